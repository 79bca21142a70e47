"""Metric throughput: vectorised vIoU vs a plain per-frame Python loop, and MeViS J&F frames/s.

    .venv/bin/python benchmarks/bench_metrics.py [--samples 100000] [--frames 100] [--mevis-frames 60]

Prints one JSON object per measurement. The tube case is 100,000 samples of 100-frame GT tubes with
predictions shifted by up to +-50 frames (official HC-STVG protocol); the loop walks every union frame
of every sample in pure Python (what the official HC-STVG script does) and must give the same numbers.
Target: the vectorised scorer >= 50x the loop. The vectorised time is reported twice: scoring an
already packed batch (how the evaluate stage holds tubes), and packing per-sample arrays plus scoring.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from stvg.evaluation.metrics import PROTOCOLS, DenseBoxes, TubeBatch, TubeInput, pack_tubes, score_batch
from stvg.evaluation.mevis import frame_scores

REPEATS = 5


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def loop_viou(gs, ps, length, gt_boxes, pred_boxes) -> list[float]:
    """Plain per-frame Python loop over dict tubes (the reference the vectorised path must match)."""
    out = []
    for i in range(len(gs)):
        g0, g1, p0, p1 = gs[i], gs[i] + length - 1, ps[i], ps[i] + length - 1
        gt, pr = gt_boxes[i], pred_boxes[i]
        total = 0.0
        for f in range(min(g0, p0), max(g1, p1) + 1):
            if g0 <= f <= g1 and p0 <= f <= p1 and f in pr:
                total += _iou(gt[f], pr[f])
        out.append(total / (max(g1, p1) - min(g0, p0) + 1))
    return out


def bench_tubes(n: int, length: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    gs = rng.integers(0, 400, n)
    ps = gs + rng.integers(-50, 51, n)
    gt = rng.uniform(0, 300, (n, length, 4)).astype(np.float32)
    gt[..., 2:] += gt[..., :2] + 20
    pr = (gt + rng.normal(0, 8, gt.shape)).astype(np.float32)
    protocol = PROTOCOLS["official"]

    # packed batch: the GT window plus the denominators, built with array slicing
    planes_gt = np.ascontiguousarray(gt.transpose(2, 0, 1))
    planes_pr = np.full_like(planes_gt, np.nan)
    for i in range(n):  # prediction rows aligned on the GT window
        off = ps[i] - gs[i]
        a, b = max(off, 0), min(off + length, length)
        planes_pr[:, i, a:b] = pr[i, a - off : b - off].T
    spans_gt = np.stack([gs, gs + length - 1], 1)
    spans_pr = np.stack([ps, ps + length - 1], 1)
    union = (
        np.maximum(spans_gt[:, 1], spans_pr[:, 1]) - np.minimum(spans_gt[:, 0], spans_pr[:, 0]) + 1
    ).astype(float)
    batch = TubeBatch(gs, spans_gt, spans_pr, planes_gt, planes_pr, union_count=union)
    runs = []
    for _ in range(REPEATS):  # best of a few: the machine is shared, the loop runs once (it takes minutes)
        t0 = time.perf_counter()
        vec = score_batch(batch, protocol).viou
        runs.append(time.perf_counter() - t0)
    t_vec, t_vec_median = min(runs), float(np.median(runs))

    items = [
        TubeInput(
            (int(gs[i]), int(gs[i]) + length - 1),
            DenseBoxes(int(gs[i]), gt[i]),
            (int(ps[i]), int(ps[i]) + length - 1),
            DenseBoxes(int(ps[i]), pr[i]),
            n_frames=1000,
            fps=30.0,
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    packed = score_batch(pack_tubes(items, protocol), protocol).viou
    t_pack = time.perf_counter() - t0

    gt64, pr64 = gt.astype(np.float64), pr.astype(np.float64)
    gt_d = [{int(gs[i]) + j: tuple(gt64[i, j].tolist()) for j in range(length)} for i in range(n)]
    pr_d = [{int(ps[i]) + j: tuple(pr64[i, j].tolist()) for j in range(length)} for i in range(n)]
    t0 = time.perf_counter()
    ref = np.asarray(loop_viou(gs.tolist(), ps.tolist(), length, gt_d, pr_d))
    t_loop = time.perf_counter() - t0

    diff = float(max(np.abs(vec - ref).max(), np.abs(packed - ref).max()))
    common = {"samples": n, "tube_frames": length, "max_abs_diff": diff}
    return [
        {"bench": "viou_loop", "seconds": round(t_loop, 3), **common},
        {
            "bench": "viou_vectorised",
            "seconds": round(t_vec, 4),
            "median_seconds": round(t_vec_median, 4),
            "repeats": REPEATS,
            "speedup": round(t_loop / t_vec, 1),
            "speedup_median": round(t_loop / t_vec_median, 1),
            **common,
        },
        {
            "bench": "viou_pack_and_score",
            "seconds": round(t_pack, 3),
            "speedup": round(t_loop / t_pack, 1),
            **common,
        },
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
    env = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine()}
    for row in bench_tubes(args.samples, args.frames):
        print(json.dumps({**row, **env}), flush=True)
    print(json.dumps({**bench_mevis(args.mevis_frames), **env}), flush=True)


if __name__ == "__main__":
    main()
