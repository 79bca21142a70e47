"""Metric throughput: vectorised vIoU vs a plain per-frame Python loop, and MeViS J&F frames/s.

    .venv/bin/python benchmarks/bench_metrics.py [--samples 100000] [--frames 100] [--mevis-frames 60]

Prints one JSON object per measurement. The tube case is 100,000 samples of 100-frame GT tubes with
predictions shifted by up to +-50 frames (official HC-STVG protocol), held as ``{frame: box}`` dicts
of Python floats, which is how ``stvg score`` and the evaluate stage receive them. The loop walks
every union frame of every sample in pure Python (what the official HC-STVG script does) and must
give the same numbers. Target: the vectorised scorer >= 50x the loop. Two vectorised figures:

- ``viou_kernel``: ``score_batch`` on a batch packed beforehand from those dicts (tubes already in
  arrays);
- ``viou_end_to_end``: ``score_tubes`` (``pack_tubes`` + ``score_batch``, the path ``stvg score`` and
  the evaluate stage run) from the same dicts the loop reads. ``dict_read_floor_seconds`` is the
  time of merely reading every key and coordinate out of the dicts into numpy (``np.fromiter``),
  a floor for any packer of Python-object tubes;
- ``viou_end_to_end_array_gt``: the same with the GT tubes array-backed, as ``stvg score hcstvg-*``
  holds them (the adapter's ``BoxTube``), predictions still dicts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import chain

import numpy as np

from stvg.evaluation.metrics import PROTOCOLS, DenseBoxes, TubeInput, pack_tubes, score_batch, score_tubes
from stvg.evaluation.mevis import frame_scores

REPEATS = 3  # best of a few: the machine may be shared (the loop, minutes at full size, gets 2)

Tube = dict[int, tuple[float, float, float, float]]


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def loop_viou(gs: list[int], ps: list[int], length: int, gt: list[Tube], pred: list[Tube]) -> list[float]:
    """Plain per-frame Python loop over dict tubes (the reference the vectorised path must match)."""
    out = []
    for i in range(len(gs)):
        g0, g1, p0, p1 = gs[i], gs[i] + length - 1, ps[i], ps[i] + length - 1
        gt_i, pr_i = gt[i], pred[i]
        total = 0.0
        for f in range(min(g0, p0), max(g1, p1) + 1):
            if g0 <= f <= g1 and p0 <= f <= p1 and f in pr_i:
                total += _iou(gt_i[f], pr_i[f])
        out.append(total / (max(g1, p1) - min(g0, p0) + 1))
    return out


def _best(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float, float, object]:
    """(best wall, median wall, best CPU) seconds of ``fn`` and its last result.

    CPU time (``process_time``) is what the process itself spent: on a shared machine it is the
    steadier figure, the wall time the honest one.
    """
    runs, cpu, result = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(runs), float(np.median(runs)), min(cpu), result


def _read_floor(tubes: Sequence[Tube]) -> None:
    n = sum(map(len, tubes))
    np.fromiter(chain.from_iterable(tubes), dtype=np.int64, count=n)
    np.fromiter(chain.from_iterable(chain.from_iterable(t.values() for t in tubes)), np.float64, count=4 * n)


def bench_tubes(n: int, length: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    gs = rng.integers(0, 400, n)
    ps = gs + rng.integers(-50, 51, n)
    gt = rng.uniform(0, 300, (n, length, 4))
    gt[..., 2:] += gt[..., :2] + 20
    pr = gt + rng.normal(0, 8, gt.shape)
    gt_d = [{int(gs[i]) + j: tuple(gt[i, j].tolist()) for j in range(length)} for i in range(n)]
    pr_d = [{int(ps[i]) + j: tuple(pr[i, j].tolist()) for j in range(length)} for i in range(n)]
    del pr
    protocol = PROTOCOLS["official"]
    items = [
        TubeInput(
            (int(gs[i]), int(gs[i]) + length - 1),
            gt_d[i],
            (int(ps[i]), int(ps[i]) + length - 1),
            pr_d[i],
            n_frames=1000,
            fps=30.0,
        )
        for i in range(n)
    ]

    t_loop, _, c_loop, ref = _best(
        lambda: np.asarray(loop_viou(gs.tolist(), ps.tolist(), length, gt_d, pr_d)), 2
    )
    t_e2e, t_e2e_med, c_e2e, e2e = _best(lambda: score_tubes(items, protocol).viou)
    batch = pack_tubes(items, protocol)  # the whole benchmark in one batch, packed outside the timing
    t_kernel, t_kernel_med, c_kernel, kernel = _best(lambda: score_batch(batch, protocol).viou, 5)
    t_floor, _, c_floor, _ = _best(lambda: (_read_floor(gt_d), _read_floor(pr_d)))
    # how `stvg score hcstvg-*` holds them: GT tubes array-backed (the adapter's BoxTube), predictions dicts
    dense_gt = [replace(it, gt_boxes=DenseBoxes(int(gs[i]), gt[i])) for i, it in enumerate(items)]
    t_dense, t_dense_med, c_dense, dense = _best(lambda: score_tubes(dense_gt, protocol).viou)

    common = {"samples": n, "tube_frames": length, "protocol": protocol.name}

    def row(bench: str, what: str, wall: float, median: float, cpu: float, viou: object) -> dict:
        return {
            "bench": bench,
            "what": what,
            "seconds": round(wall, 4),
            "median_seconds": round(median, 4),
            "cpu_seconds": round(cpu, 4),
            "speedup": round(t_loop / wall, 1),
            "speedup_median": round(t_loop / median, 1),
            "speedup_cpu": round(c_loop / cpu, 1),
            "max_abs_diff": float(np.abs(np.asarray(viou) - np.asarray(ref)).max()),
            **common,
        }

    return [
        {"bench": "viou_loop", "seconds": round(t_loop, 3), "cpu_seconds": round(c_loop, 3), **common},
        row("viou_kernel", "score_batch on a pre-packed batch", t_kernel, t_kernel_med, c_kernel, kernel),
        {
            **row(
                "viou_end_to_end",
                "score_tubes (pack_tubes + score_batch) from the loop's dict tubes",
                t_e2e,
                t_e2e_med,
                c_e2e,
                e2e,
            ),
            "dict_read_floor_seconds": round(t_floor, 3),
            "dict_read_floor_cpu_seconds": round(c_floor, 3),
        },
        row(
            "viou_end_to_end_array_gt",
            "score_tubes with array-backed GT tubes (as the HC-STVG adapter loads them), dict predictions",
            t_dense,
            t_dense_med,
            c_dense,
            dense,
        ),
    ]


def bench_mevis(n_frames: int, width: int = 854, height: int = 480, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    gt = np.zeros((n_frames, height, width), dtype=bool)
    pred = np.zeros_like(gt)
    for t in range(n_frames):
        cx, cy, r = rng.uniform(200, 650), rng.uniform(120, 360), rng.uniform(40, 110)
        gt[t] = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        pred[t] = (xx - cx - rng.normal(0, 8)) ** 2 + (yy - cy - rng.normal(0, 8)) ** 2 < (r * 1.05) ** 2
    t0 = time.perf_counter()
    j, f = frame_scores(pred, gt)
    seconds = time.perf_counter() - t0
    return {
        "bench": "mevis_jf",
        "frames": n_frames,
        "size": f"{width}x{height}",
        "seconds": round(seconds, 3),
        "frames_per_s": round(n_frames / seconds, 1),
        "mean_J": round(float(j.mean()), 4),
        "mean_F": round(float(f.mean()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--mevis-frames", type=int, default=60)
    args = ap.parse_args()
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    for row in bench_tubes(args.samples, args.frames):
        print(json.dumps({**row, **env}), flush=True)
    print(json.dumps({**bench_mevis(args.mevis_frames), **env}), flush=True)


if __name__ == "__main__":
    main()
