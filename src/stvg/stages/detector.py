"""Detector stage: the embedded default's own YOLO, trained on synthetic frames, or a given weights file.

    stvg detector --params params.yaml --out artifacts/detector

With ``detector.weights: ""`` it trains ``detector.arch`` (a detection or -seg yaml) from scratch on
``n_train_frames`` frames drawn from the synthetic benchmark's generator (fresh scenes of the same
distribution as the train split, from a stream disjoint from both benchmark splits, so the val split,
which is the benchmark, is never seen) and validates on ``n_val_frames`` frames from another disjoint
stream. With a weights path it checks that the file loads and has the requested classes, and copies
it. Writes ``weights.pt``, ``metrics.json`` (mAP50, mAP50-95, epochs) and ``summary.json``, all at
once (the folder appears complete or not at all); the YOLO run folder lives in a temp dir. Wall times
go to ``artifacts/run_info/detector.json`` (``stvg.runinfo``), never into a hashed output.

Reproducibility: training is seeded and deterministic on one kind of machine, and the checkpoint is
written by ``prompting.detector.canonical_checkpoint`` without Ultralytics' save date, per-epoch
timings and temporary run paths, so the same params and code give the same ``weights.pt`` bytes
(README, "Versions you can trust").
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stvg.config import DetectorParams, ParamsError, SyntheticParams, load_params
from stvg.io import atomic_dir, write_json_atomic
from stvg.runinfo import write_run_info

log = logging.getLogger("stvg.detector")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stvg detector", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (sections detector, synthetic)")
    parser.add_argument("--out", default="artifacts/detector", help="output folder")
    return parser.parse_args(argv)


def labelled_frames(
    p: SyntheticParams, n: int, seed: int, crowded_fraction: float = 0.0
) -> tuple[list[Any], tuple[str, ...]]:
    """``n`` generator frames as LabelledFrame records, and the class names (SHAPE_CLASSES order)."""
    from stvg.data.synthetic import SHAPE_CLASSES, render_detector_frames
    from stvg.prompting.detector import LabelledFrame

    class_index = {name: i for i, name in enumerate(SHAPE_CLASSES)}
    frames = [
        LabelledFrame(
            image=fr.image,
            class_ids=tuple(class_index[name] for name, _ in fr.labels),
            boxes=tuple(tuple(float(v) for v in box) for _, box in fr.labels),
            masks=tuple(fr.masks),
        )
        for fr in render_detector_frames(p, n, seed, crowded_fraction=crowded_fraction)
    ]
    return frames, tuple(SHAPE_CLASSES)


def train(
    d: DetectorParams, synthetic: SyntheticParams, out: Path, device: str = "cpu"
) -> tuple[dict[str, Any], dict[str, float]]:
    """Train ``d.arch`` on generator frames on ``device``; writes weights.pt and metrics.json into ``out``.

    Returns the metrics and the wall times (``render_s``, ``train_s``), which are kept out of ``out``.
    """
    from stvg.prompting.detector import canonical_checkpoint, train_detector, write_yolo_dataset

    t0 = time.perf_counter()
    train_frames, names = labelled_frames(synthetic, d.n_train_frames, d.seed, d.crowded_fraction)
    val_frames, _ = labelled_frames(synthetic, d.n_val_frames, d.seed + 1)
    segment = "-seg" in Path(d.arch).stem
    with tempfile.TemporaryDirectory(prefix="stvg-detector-") as tmp:
        work = Path(tmp)
        data_yaml = write_yolo_dataset(work / "dataset", train_frames, val_frames, names, segment=segment)
        render_s = time.perf_counter() - t0
        log.info(
            "detector: %d train / %d val frames rendered in %.1f s",
            len(train_frames),
            len(val_frames),
            render_s,
        )
        result = train_detector(
            d.arch,
            data_yaml,
            work,
            epochs=d.epochs,
            imgsz=d.imgsz,
            batch=d.batch,
            threads=d.threads,
            seed=d.seed,
            device=device,
        )
        canonical_checkpoint(result.weights, out / "weights.pt", work)
    metrics = {
        **{k: round(v, 4) for k, v in result.metrics.items()},
        "epochs": result.epochs,
        "task": result.task,
        "arch": d.arch,
        "imgsz": d.imgsz,
        "n_train_frames": len(train_frames),
        "n_val_frames": len(val_frames),
        "classes": list(names),
        "source": "trained",
    }
    write_json_atomic(out / "metrics.json", metrics)
    return metrics, {"render_s": render_s, "train_s": result.seconds}


def adopt(d: DetectorParams, out: Path) -> dict[str, Any]:
    """Check a given weights file (a path or a registered name in ``weights/``) against its pin, load
    it safely with the requested classes, copy it.

    The copy is what later stages load, so the pin is checked on the bytes copied, before any unpickling.
    """
    from stvg.prompting.detector import YoloDetector
    from stvg.prompting.weights import check_pinned, resolve_weights

    src = resolve_weights(d.weights)
    copied = out / "weights.pt"
    shutil.copyfile(src, copied)
    digest = check_pinned(
        copied, d.weights_sha256, allow_unpinned=d.allow_unpinned_weights, param="detector.weights_sha256"
    )
    detector = YoloDetector(copied, conf=d.conf, classes=d.classes, imgsz=d.imgsz)
    metrics = {
        "source": "given",
        "weights": str(src),
        "sha256": digest,
        "task": str(detector.model.task),
        "classes": sorted(set(detector.class_names.values())),
    }
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"stvg detector: {exc}", file=sys.stderr)
        return 2
    d = params.detector
    out = Path(args.out)
    t0 = time.perf_counter()
    try:
        from stvg.runtime import device_kind, device_report, resolve_device

        device = resolve_device(d.device, "detector.device")
        with atomic_dir(out) as tmp_out:
            metrics, seconds = (
                (adopt(d, tmp_out), {}) if d.weights else train(d, params.synthetic, tmp_out, device)
            )
            summary = {
                "stage": "detector",
                "source": metrics["source"],
                "arch": d.arch if not d.weights else None,
                "mAP50": metrics.get("mAP50"),
                "mAP50-95": metrics.get("mAP50-95"),
                "epochs": metrics.get("epochs"),
                "classes": metrics["classes"],
                "device_kind": device_kind(device) if not d.weights else None,
            }
            write_json_atomic(tmp_out / "summary.json", summary)
    except (FileNotFoundError, ValueError) as exc:
        print(f"stvg detector: {exc}", file=sys.stderr)
        return 1
    write_run_info(out, "detector", {**seconds, "total_s": time.perf_counter() - t0}, device_report(device))
    print(f"stvg detector: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
