"""Overlay render + encode throughput at 640x360 (target: >= 300 frames/s per core).

    .venv/bin/python benchmarks/bench_render.py [--frames 600] [--instances 4]

Moving ellipse/ring masks on a noisy background; each measurement is one JSON line on stdout:
draw only, encode only, and draw + encode, in frames/s, with the thread count OpenCV was allowed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from stvg.config import RenderParams
from stvg.prompting.render import draw_ids, write_video


def make_frames(n: int, width: int, height: int, n_instances: int, seed: int = 0):
    """Frames plus per-frame instance masks of moving filled ellipses (one ring)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    starts = rng.uniform([40, 40], [width - 40, height - 40], (n_instances, 2))
    vel = rng.uniform(-2, 2, (n_instances, 2))
    for t in range(n):
        masks = {}
        for k in range(n_instances):
            cx, cy = (starts[k] + vel[k] * t) % [width - 80, height - 80] + 40
            m = np.zeros((height, width), np.uint8)
            cv2.ellipse(m, (int(cx), int(cy)), (30 + 5 * k, 20 + 3 * k), 0, 0, 360, 1, -1)
            if k == 0:
                cv2.ellipse(m, (int(cx), int(cy)), (15, 10), 0, 0, 360, 0, -1)  # a ring
            masks[k + 1] = m.astype(bool)
        yield base, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (1 = per-core figure)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    p = RenderParams()
    data = list(make_frames(args.frames, args.width, args.height, args.instances))
    common = {
        "width": args.width,
        "height": args.height,
        "frames": args.frames,
        "instances": args.instances,
        "threads": args.threads,
    }

    t0 = time.perf_counter()
    drawn = [draw_ids(f, m, p) for f, m in data]
    t_draw = time.perf_counter() - t0
    print(json.dumps({"bench": "render.draw", "frames_per_s": round(args.frames / t_draw, 1), **common}))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_video(Path(tmp) / "a.mp4", drawn, fps=30.0)
        t_enc = time.perf_counter() - t0
        print(json.dumps({"bench": "render.encode", "frames_per_s": round(args.frames / t_enc, 1), **common}))

        t0 = time.perf_counter()
        write_video(Path(tmp) / "b.mp4", (draw_ids(f, m, p, inplace=False) for f, m in data), fps=30.0)
        t_all = time.perf_counter() - t0
    fps_all = args.frames / t_all
    print(
        json.dumps(
            {
                "bench": "render.draw+encode",
                "frames_per_s": round(fps_all, 1),
                "target_frames_per_s": 300,
                "meets_target": fps_all >= 300,
                **common,
            }
        )
    )


if __name__ == "__main__":
    main()
