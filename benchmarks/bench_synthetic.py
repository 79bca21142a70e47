"""Synthetic benchmark generation throughput at the default size (params.yaml `synthetic`), in frames/s.

    .venv/bin/python benchmarks/bench_synthetic.py [--params params.yaml] [--repeats 3]

Each measurement is one JSON line on stdout: the whole ``generate_benchmark`` (scene sampling,
rendering, expression checking, RLE, mp4 encoding, JSON) into a temporary folder, and the single
frames drawn by ``render_detector_frames``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from stvg.config import load_params
from stvg.data.synthetic import generate_benchmark, render_detector_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detector-frames", type=int, default=200)
    args = ap.parse_args()
    p = load_params(args.params).synthetic
    size = {"width": p.width, "height": p.height, "fps": p.fps, "duration_s": p.duration_s}
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summary = generate_benchmark(p, Path(tmp) / "synthetic", progress=False)
            seconds = time.perf_counter() - t0
        frames = sum(c["frames"] for c in summary["counts"].values())
        videos = p.n_train + p.n_val
        print(
            json.dumps(
                {
                    "bench": "synthetic_generate",
                    "repeat": repeat,
                    "videos": videos,
                    "frames": frames,
                    "seconds": round(seconds, 3),
                    "frames_per_s": round(frames / seconds, 1),
                    "cpu_count": os.cpu_count(),
                    **size,
                }
            )
        )
    t0 = time.perf_counter()
    n = sum(1 for _ in render_detector_frames(p, args.detector_frames, seed=0))
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "bench": "synthetic_detector_frames",
                "frames": n,
                "seconds": round(seconds, 3),
                "frames_per_s": round(n / seconds, 1),
                **size,
            }
        )
    )


if __name__ == "__main__":
    main()
