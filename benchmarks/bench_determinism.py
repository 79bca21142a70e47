"""Byte-reproducibility of the detector stage: train it twice with the same params, compare the outputs.

    .venv/bin/python benchmarks/bench_determinism.py [--params params.yaml] [--epochs N] [--frames N]

Runs ``stvg detector`` twice (each in a fresh process, as ``dvc repro`` would) into two temp folders
and prints one JSON line: whether ``weights.pt``, ``metrics.json`` and ``summary.json`` are identical
bytes, how many model tensors differ (and by how much at most), and the wall times. ``--epochs`` /
``--frames`` shrink the run for a quick look; the README's figure uses the params as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

OUTPUTS = ("weights.pt", "metrics.json", "summary.json")


def _params(path: Path, epochs: int, frames: int) -> dict[str, Any]:
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    if epochs:
        params["detector"]["epochs"] = epochs
    if frames:
        params["detector"].update(n_train_frames=frames, n_val_frames=max(8, frames // 5))
    return params


def _train(params_file: Path, out: Path) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "stvg.cli", "detector", "--params", str(params_file), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def _tensor_diff(a: Path, b: Path) -> tuple[int, int, float]:
    import torch

    sa = torch.load(a, weights_only=False)["model"].float().state_dict()  # our own fresh files
    sb = torch.load(b, weights_only=False)["model"].float().state_dict()
    differing = [k for k in sa if not torch.equal(sa[k], sb[k])]
    worst = max((float((sa[k] - sb[k]).abs().max()) for k in differing), default=0.0)
    return len(differing), len(sa), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=0, help="override detector.epochs (0 = keep)")
    parser.add_argument("--frames", type=int, default=0, help="override detector.n_train_frames (0 = keep)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="stvg-bench-determinism-") as tmp:
        root = Path(tmp)
        params_file = root / "params.yaml"
        params_file.write_text(yaml.safe_dump(_params(Path(args.params), args.epochs, args.frames)))
        seconds = [_train(params_file, root / run) for run in ("a", "b")]
        same = {
            name: (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes() for name in OUTPUTS
        }
        differing, total, worst = _tensor_diff(root / "a" / "weights.pt", root / "b" / "weights.pt")
        detector = yaml.safe_load(params_file.read_text())["detector"]
    row = {
        "bench": "determinism.detector",
        "epochs": detector["epochs"],
        "n_train_frames": detector["n_train_frames"],
        "threads": detector["threads"],
        "identical_bytes": same,
        "tensors_differing": differing,
        "tensors": total,
        "max_abs_difference": worst,
        "seconds": [round(s, 1) for s in seconds],
        "cpu_count": os.cpu_count(),
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
