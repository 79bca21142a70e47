"""Benchmark: parse a 16,000-entry HC-STVG-v2-format annotation file with ``load_samples``.

Target: <= 2 s on 2 cores. The file is built in a temp dir with realistic tubes (100-600 integer
xywh boxes per entry, slowly drifting, 600-750 frames per 20-s clip), written compactly as the
releases are. Prints one JSON object per measurement.

Run: .venv/bin/python benchmarks/bench_parse.py [--entries 16000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from stvg.data.registry import load_samples


def build_annotation(path: Path, entries: int, seed: int = 0) -> int:
    """Write an HC-STVG v2 train file with ``entries`` videos; returns the number of boxes."""
    rng = np.random.default_rng(seed)
    anno = {}
    total = 0
    for i in range(entries):
        n = int(rng.integers(100, 601))
        img_num = int(rng.choice([600, 640, 750]))
        first = int(rng.integers(0, img_num - n + 1))
        xy = np.cumsum(rng.integers(-3, 4, size=(n, 2)), axis=0) + [
            rng.integers(50, 400),
            rng.integers(20, 120),
        ]
        xy = np.clip(xy, 0, [480, 140])
        wh = np.stack([rng.integers(100, 131, size=n), rng.integers(180, 201, size=n)], axis=1)
        fps = img_num / 20
        anno[f"{i}_vid{i:06d}.mp4"] = {
            "bbox": np.concatenate([xy, wh], axis=1).tolist(),
            "st_time": round(first / fps, 4),
            "ed_time": round((first + n) / fps, 4),
            "img_num": img_num,
            "English": "The man in the black coat walks to the door, opens it and looks back.",
            "img_size": [360, 640],
            "st_frame": first + 1,
        }
        total += n
    path.write_text(json.dumps(anno, separators=(", ", ": ")))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train_v2.json"
        boxes = build_annotation(path, args.entries)
        times, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = load_samples("hcstvg-v2", path)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert len(result.samples) == args.entries and not result.invalid
        print(
            json.dumps(
                {
                    "name": "parse_hcstvg_v2",
                    "entries": args.entries,
                    "boxes": boxes,
                    "file_mb": round(path.stat().st_size / 1e6, 1),
                    "seconds": round(min(times), 3),
                    "first_call_seconds": round(times[0], 3),
                    "cpu_seconds": round(
                        min(cpu), 3
                    ),  # process CPU time: what wall time is on an idle machine
                    "all_seconds": [round(t, 3) for t in times],
                    "load_avg_1m": round(
                        os.getloadavg()[0], 2
                    ),  # the machine may be shared: timings are noisy
                }
            )
        )


if __name__ == "__main__":
    main()
