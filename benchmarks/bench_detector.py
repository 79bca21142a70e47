"""Detector training on the embedded default (target: <= 5 min on 2 cores, mAP50 >= 0.9 on held-out frames).

    .venv/bin/python benchmarks/bench_detector.py [--params params.yaml] [--epochs N]

Trains ``detector.arch`` exactly as the detector stage does (into a temp folder) and prints one JSON
line: training seconds, mAP50 / mAP50-95 on the held-out generator frames, and the 1-min load average
before and after (the figures are only comparable on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

from stvg.config import load_params
from stvg.env import configure_environment
from stvg.stages.detector import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=0, help="override detector.epochs (0 = keep)")
    args = parser.parse_args()
    configure_environment()
    params = load_params(args.params)
    d = params.detector
    if args.epochs:
        d = dataclasses.replace(d, epochs=args.epochs)
    load_before = os.getloadavg()[0]
    # Ultralytics logs and progress bars go to stdout; keep stdout for the JSON line only.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            metrics, seconds = train(d, params.synthetic, Path(tmp))
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    row = {
        "bench": "detector.train",
        "arch": d.arch,
        "imgsz": d.imgsz,
        "epochs": d.epochs,
        "seconds": round(seconds["train_s"], 1),
        "data_seconds": round(seconds["render_s"], 1),
        "mAP50": metrics["mAP50"],
        "mAP50-95": metrics["mAP50-95"],
        "target_seconds": 300,
        "target_mAP50": 0.9,
        "cpu_count": os.cpu_count(),
        "threads": d.threads,
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
