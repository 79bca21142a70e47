"""Prompt stage wall time: the local executor vs the ray executor with 1 and 2 workers, in one run.

    .venv/bin/python benchmarks/bench_prompt_ray.py [--videos N] [--params params.yaml]

The CPU backend (``prompt.backend: synthetic_cpu``, params.yaml's settings) over the embedded
default's videos (``params.synthetic``: its train then validation videos, written as mp4; all of
them unless ``--videos`` takes the first N). Detections come from the saturated
colour components of each frame (the shapes), so the timing covers decoding, GrabCut masks, BoT-SORT
with colour ReID, ID repair, rendering and sampling, but not YOLO inference (trained weights are not
needed to run this). As root the script re-runs itself inside a network namespace holding only
loopback and starts a one-node Ray head there (``num_cpus`` = 2, no dashboard, no usage stats; one
worker holds both CPUs, two hold one each, so ray at 1 worker has the threads ``local`` has),
stopped by PID at the end. Also times two plain forked processes (no Ray) prompting alternate halves
at once: what two workers can gain on this machine at best. Prints one JSON object: wall seconds per
run (and the per-video seconds summed over the workers, which separates start-up from the prompting
itself and shows how much two busy cores slow each other), the overhead of ray with 1 worker over
local, the speed-ups with 2 workers and with two plain processes, whether every Ray database is
byte-identical to the local one, and the load average seen (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAD_CPUS = 2
sys.path[:0] = [str(REPO / "src"), str(REPO)]


class ComponentDetector:
    """Boxes of the saturated colour components of each frame (the synthetic shapes)."""

    def detect_with_masks(self, frames, frame_indices=None):
        import cv2

        from stvg.records import Detection

        out = []
        for i, frame in enumerate(frames):
            hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
            fg = ((hsv[..., 1] > 120) & (hsv[..., 2] > 80)).astype("uint8")
            n, _, stats, _ = cv2.connectedComponentsWithStats(fg)
            dets = []
            for k in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[k])
                if area >= 40:
                    box = (x + 0.4, y - 0.3, x + w + 0.7, y + h + 0.2)
                    dets.append((Detection(int(frame_indices[i]), box, 0.5 + area % 40 / 100), None))
            out.append(dets)
        return out


def write_videos(params, folder: Path, n: int) -> dict[str, Path]:
    import cv2
    import numpy as np

    from stvg.data.synthetic import build_video

    sp = params.synthetic
    folder.mkdir(parents=True, exist_ok=True)
    videos = {}
    ids = [("train", i) for i in range(sp.n_train)] + [("val", i) for i in range(sp.n_val)]
    for split, i in ids[:n] if n else ids:
        video = build_video(sp, split, i)
        path = folder / video.name  # e.g. synthetic_val_0000.mp4, as the embedded default names it
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), sp.fps, (sp.width, sp.height))
        for frame in video.frames:
            vw.write(np.ascontiguousarray(frame[..., ::-1]))
        vw.release()
        videos[path.name] = path
    return videos


def timed_run(params, videos: dict[str, Path], weights: Path, out: Path) -> dict:
    from stvg.stages import prompt as stage
    from tests.stages.test_prompt_determinism import tree_hash

    t0 = time.perf_counter()
    summary, report = stage.run(params, videos, weights, out, "cpu", ComponentDetector())
    wall = time.perf_counter() - t0
    assert summary["failed"] == 0, summary["failures"]
    return {
        "wall_s": round(wall, 2),
        "prompt_s": report["prompt_seconds"],  # summed per-video time inside the workers
        "processed": report["processed"],
        "hash": tree_hash(out),
    }


def two_processes(params, videos: dict[str, Path], weights: Path, out: Path) -> dict:
    """The machine's own ceiling, without Ray: two forked processes (warm, as the driver is) prompt
    alternate halves of the videos with the local executor at the same time, one thread each."""
    import multiprocessing

    def half(k: int) -> None:
        import cv2

        cv2.setNumThreads(1)  # as a Ray worker holding one CPU
        part = dict(sorted(videos.items())[k::2])
        report = timed_run(params, part, weights, out / f"half{k}")
        (out / f"half{k}.json").write_text(json.dumps(report))

    out.mkdir(parents=True)
    context = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    children = [context.Process(target=half, args=(k,)) for k in (0, 1)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    wall = time.perf_counter() - t0
    halves = [json.loads((out / f"half{k}.json").read_text()) for k in (0, 1)]
    return {"wall_s": round(wall, 2), "prompt_s": round(sum(h["prompt_s"] for h in halves), 3)}


def measure(args: argparse.Namespace) -> dict:
    import ray

    from stvg.config import load_params
    from tests.raycluster import RayHead

    params = load_params(args.params)
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    videos = write_videos(params, work / "videos", args.videos)
    weights = work / "weights.pt"
    weights.write_bytes(b"component detector")
    first = dict(list(videos.items())[:1])
    timed_run(params, first, weights, work / "warmup")  # imports and first-call costs of this process
    runs: dict[str, dict] = {"local": timed_run(params, videos, weights, work / "local")}
    plain = two_processes(params, videos, weights, work / "plain")
    with RayHead(num_cpus=HEAD_CPUS) as head:
        t0 = time.perf_counter()
        ray.init(address=head.address, log_to_driver=False)
        connect = time.perf_counter() - t0
        for workers in (1, 2):  # the head's 2 CPUs shared by the workers (1 worker: both, as `local` has)
            cpus = HEAD_CPUS / workers
            cfg = replace(params.prompt.ray, address=head.address, max_in_flight=workers, cpus_per_task=cpus)
            p = replace(params, prompt=replace(params.prompt, executor="ray", ray=cfg))
            runs[f"ray_{workers}"] = timed_run(p, videos, weights, work / f"ray{workers}")
        ray.shutdown()
    local, one, two = (runs[k]["wall_s"] for k in ("local", "ray_1", "ray_2"))
    return {
        "benchmark": "prompt_ray",
        "videos": len(videos),
        "video_size": [params.synthetic.width, params.synthetic.height],
        "frames_per_video": int(params.synthetic.fps * params.synthetic.duration_s),
        "wall_s": {**{k: v["wall_s"] for k, v in runs.items()}, "two_plain_processes": plain["wall_s"]},
        "summed_video_s": {
            **{k: v["prompt_s"] for k, v in runs.items()},
            "two_plain_processes": plain["prompt_s"],
        },
        "ray_connect_s": round(connect, 2),
        "ray_1_overhead_vs_local": round(one / local - 1, 3),
        "ray_2_speedup_vs_local": round(local / two, 3),
        "ray_2_speedup_vs_ray_1": round(one / two, 3),
        "two_plain_processes_speedup_vs_local": round(local / plain["wall_s"], 3),  # the machine's ceiling
        "byte_identical": len({v["hash"] for v in runs.values()}) == 1,
        "cpus": os.cpu_count(),
        "load_avg_1m_before_after": [args.load_before, round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=0, help="the first N videos (default: all)")
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--load-before", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        print(json.dumps(measure(args)))
        return
    from tests.raycluster import inside_loopback_namespace, namespace_unavailable

    reason = namespace_unavailable()
    if reason:  # `make bench` goes on with the other benchmarks
        print(
            json.dumps(
                {
                    "benchmark": "prompt_ray",
                    "skipped": f"Ray runs only in a loopback-only namespace: {reason}",
                }
            )
        )
        return
    load = str(round(os.getloadavg()[0], 2))
    argv = ["--inside", "--videos", str(args.videos), "--params", args.params, "--load-before", load]
    done = inside_loopback_namespace("benchmarks.bench_prompt_ray", *argv, timeout=3600)
    if done.returncode:
        sys.exit(done.stderr[-4000:])
    print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
