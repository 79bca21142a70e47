"""Ultralytics YOLO as the prompting detector: batched, class-filtered, offline, with optional masks.

Weights come from a ``.pt`` file (paper: YOLOv12-x, conf 0.25, ``person`` on HC-STVG, all classes
elsewhere) or an architecture yaml (random weights, for speed benchmarks and smoke tests). Nothing
is downloaded or installed at run time: a missing file is an error naming the fetch step, and
``disable_integrations`` turns off Ultralytics' own MLflow/DVC/... callbacks and analytics so a
``train()`` never logs anywhere by itself (the flow owns tracking).

Checkpoints are pickles: Ultralytics' default load (``weights_only=False``) runs whatever code a
crafted ``.pt`` carries. ``load_yolo`` always loads a ``.pt`` in Ultralytics' safe mode (the
``ULTRALYTICS_SAFE_LOAD`` path: ``torch.load(weights_only=True)`` against its allow-list of model
classes), and reports a refused file as ``UnsafeCheckpointError`` naming the foreign objects.

Ultralytics caps torch at ``cores - 1`` threads (1 on a 2-core machine) whenever it selects a CPU
device; ``threads`` here overrides that for the duration of each call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stvg.records import Detection

log = logging.getLogger(__name__)

INTEGRATION_SETTINGS = {
    "sync": False,  # analytics events
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
}


def disable_integrations() -> None:
    """Switch off Ultralytics' logging integrations and analytics (persisted in YOLO_CONFIG_DIR)."""
    from ultralytics.utils import SETTINGS

    changed = {k: v for k, v in INTEGRATION_SETTINGS.items() if SETTINGS.get(k) != v}
    if changed:
        SETTINGS.update(changed)


@contextlib.contextmanager
def ultralytics_threads(threads: int | None) -> Iterator[None]:
    """Let Ultralytics' ``select_device`` set ``threads`` torch threads instead of ``cores - 1``."""
    if not threads:
        yield
        return
    import torch
    from ultralytics.utils import torch_utils

    old_const, old_torch = torch_utils.NUM_THREADS, torch.get_num_threads()
    torch_utils.NUM_THREADS = threads
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch_utils.NUM_THREADS = old_const
        torch.set_num_threads(old_torch)


class UnsafeCheckpointError(ValueError):
    """A checkpoint references objects outside Ultralytics' allow-list; it was not unpickled."""


@contextlib.contextmanager
def safe_unpickling() -> Iterator[None]:
    """Ultralytics' ``ULTRALYTICS_SAFE_LOAD`` mode for this block, whenever ultralytics was imported.

    The environment flag is read once at import; the module global it sets is what each load consults.
    """
    from ultralytics.nn import tasks

    old = tasks.SAFE_LOAD
    tasks.SAFE_LOAD = True
    try:
        yield
    finally:
        tasks.SAFE_LOAD = old


def foreign_globals(path: Path) -> list[str]:
    """Python objects a torch checkpoint references outside torch/Ultralytics/numpy (scanned, never run)."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError):  # not a torch zip archive: the load itself reports it
        return []
    trusted = ("torch.", "ultralytics.", "numpy.", "collections.OrderedDict", "builtins.set")
    return sorted(n for n in names if not n.startswith(trusted))


def load_yolo(weights: str | Path) -> Any:
    """An Ultralytics ``YOLO`` from a weights file (loaded safely), or from an architecture yaml."""
    from ultralytics import YOLO

    disable_integrations()
    spec = str(weights)
    if spec.endswith((".yaml", ".yml")):
        model = YOLO(spec)
        _name_coco_classes(model)
        return model
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"detector weights {path} not found; train them with `stvg detector`, fetch a registered "
            "checkpoint with `stvg weights fetch`, or set detector.weights to a local .pt"
        )
    try:
        with safe_unpickling():
            return YOLO(str(path))
    except Exception as exc:
        foreign = foreign_globals(path)
        if not foreign:
            raise
        raise UnsafeCheckpointError(
            f"detector weights {path} refused: the checkpoint references Python objects that are not model "
            f"classes ({', '.join(foreign[:5])}), and unpickling it could run code. It is loaded only with "
            "weights_only=True against Ultralytics' allow-list; use an official Ultralytics checkpoint "
            "or one trained by `stvg detector`"
        ) from exc


def _name_coco_classes(model: Any) -> None:
    """Give an 80-class yaml-built model the COCO names its released weights carry ("person", ...).

    Ultralytics names the classes of a model built from a yaml "0".."79"; with COCO names a random-
    weight stand-in for YOLOv12-x accepts the same class filter as the real checkpoint.
    """
    import yaml
    from ultralytics.utils import ROOT

    names = model.names
    if len(names) != 80 or any(str(v) != str(k) for k, v in dict(names).items()):
        return
    coco = yaml.safe_load((ROOT / "cfg" / "datasets" / "coco.yaml").read_text(encoding="utf-8"))["names"]
    model.model.names = {int(k): str(v) for k, v in coco.items()}


class YoloDetector:
    """Batched YOLO inference returning ``stvg.records.Detection`` lists (and masks for -seg models)."""

    def __init__(
        self,
        weights: str | Path,
        conf: float = 0.25,
        classes: tuple[str, ...] = (),
        imgsz: int | None = None,
        device: str = "cpu",
        *,
        batch: int = 16,
        threads: int | None = None,
        iou: float = 0.7,
    ) -> None:
        self.model = load_yolo(weights)
        self.weights = str(weights)
        self.conf = conf
        self.imgsz = imgsz
        self.device = device
        self.batch = max(1, batch)
        self.threads = threads
        self.iou = iou
        names = self.model.names
        self._names: dict[int, str] = dict(names) if isinstance(names, dict) else dict(enumerate(names))
        unknown = [c for c in classes if c not in self._names.values()]
        if unknown:
            raise ValueError(
                f"detector classes {unknown} are not in {self.weights}'s classes "
                f"{sorted(set(self._names.values()))}; fix detector.classes"
            )
        self.classes = tuple(classes)
        self._class_ids = sorted(i for i, n in self._names.items() if n in classes) if classes else None

    @property
    def class_names(self) -> dict[int, str]:
        """Class id -> name of the loaded model."""
        return dict(self._names)

    @property
    def is_segmentation(self) -> bool:
        """True for -seg models (masks available)."""
        return getattr(self.model, "task", "") == "segment"

    def detect(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        """Detections per frame (RGB uint8 HxWx3); ``frame_indices`` label them (default 0..n-1)."""
        return [[d for d, _ in per_frame] for per_frame in self._run(frames, frame_indices, masks=False)]

    def detect_with_masks(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None = None
    ) -> list[list[tuple[Detection, np.ndarray | None]]]:
        """Detections with full-resolution bool HxW masks (None for box-only models)."""
        return self._run(frames, frame_indices, masks=True)

    def _run(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None, *, masks: bool
    ) -> list[list[tuple[Detection, np.ndarray | None]]]:
        frames = list(frames)
        indices = list(range(len(frames))) if frame_indices is None else [int(i) for i in frame_indices]
        if len(indices) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(indices)} frame indices")
        want_masks = masks and self.is_segmentation
        out: list[list[tuple[Detection, np.ndarray | None]]] = []
        for start in range(0, len(frames), self.batch):
            chunk = frames[start : start + self.batch]
            # Ultralytics treats numpy images as BGR (cv2.imread order); ours are RGB.
            bgr = [np.ascontiguousarray(f[..., ::-1]) for f in chunk]
            kwargs: dict[str, Any] = {
                "conf": self.conf,
                "iou": self.iou,
                "classes": self._class_ids,
                "device": self.device,
                "verbose": False,
                "retina_masks": want_masks,
            }
            if self.imgsz:
                kwargs["imgsz"] = self.imgsz
            with ultralytics_threads(self.threads):
                results = self.model.predict(bgr, **kwargs)
            for frame_index, result in zip(indices[start : start + self.batch], results, strict=True):
                out.append(self._to_detections(result, frame_index, want_masks))
        return out

    def _to_detections(
        self, result: Any, frame_index: int, want_masks: bool
    ) -> list[tuple[Detection, np.ndarray | None]]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy().astype(float)
        scores = boxes.conf.cpu().numpy().astype(float)
        cls = boxes.cls.cpu().numpy().astype(int)
        mask_arr = None
        if want_masks and result.masks is not None:
            mask_arr = result.masks.data.cpu().numpy() > 0.5  # (N, H, W) bool at the original size
        h, w = result.orig_shape
        rows: list[tuple[Detection, np.ndarray | None]] = []
        for k in range(len(xyxy)):
            x1, y1, x2, y2 = np.clip(xyxy[k], [0, 0, 0, 0], [w, h, w, h]).tolist()
            det = Detection(
                frame=frame_index,
                box=(x1, y1, x2, y2),
                score=float(scores[k]),
                class_id=int(cls[k]),
                class_name=self._names.get(int(cls[k]), str(cls[k])),
            )
            rows.append((det, mask_arr[k] if mask_arr is not None else None))
        return rows


# ----------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class LabelledFrame:
    """One training image: RGB frame, class ids, xyxy boxes (pixels) and bool masks (same order)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    class_ids: tuple[int, ...]
    boxes: tuple[tuple[float, float, float, float], ...]
    masks: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class TrainResult:
    """What a detector training run produced (weights path inside the work folder) and its scores."""

    weights: Path
    metrics: dict[str, float]
    epochs: int
    seconds: float
    task: str


def write_yolo_dataset(
    root: Path,
    train: Sequence[LabelledFrame],
    val: Sequence[LabelledFrame],
    class_names: Sequence[str],
    *,
    segment: bool,
) -> Path:
    """Write frames as JPEG (the codec artifacts resemble decoded video) plus YOLO labels; returns data.yaml."""
    import cv2
    import yaml

    for split, frames in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, fr in enumerate(frames):
            h, w = fr.image.shape[:2]
            cv2.imwrite(
                str(root / "images" / split / f"{i:06d}.jpg"),
                fr.image[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 90],
            )
            lines = []
            for k, (cid, (x1, y1, x2, y2)) in enumerate(zip(fr.class_ids, fr.boxes, strict=True)):
                if segment:
                    poly = _mask_polygon(fr.masks[k]) if k < len(fr.masks) else None
                    if poly is None:
                        poly = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], float)
                    coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
                    lines.append(f"{cid} {coords}")
                else:
                    cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
                    lines.append(f"{cid} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            (root / "labels" / split / f"{i:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(root),
                "train": "images/train",
                "val": "images/val",
                "names": dict(enumerate(class_names)),
            }
        )
    )
    return data_yaml


def _mask_polygon(mask: np.ndarray) -> np.ndarray | None:
    """Outer contour of the largest connected part of a mask, (K, 2) xy pixels, or None."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return c.astype(float) if len(c) >= 3 else None


def train_detector(
    arch: str,
    data_yaml: Path,
    work_dir: Path,
    *,
    epochs: int,
    imgsz: int,
    batch: int,
    threads: int,
    seed: int = 0,
    validate_every_epoch: bool = False,
    device: str = "cpu",
) -> TrainResult:
    """Train ``arch`` from scratch on ``data_yaml``; the run folder stays in ``work_dir`` (not ./runs).

    Settings measured on 2 CPU cores: ``nbs = batch`` (the default 64 would accumulate several batches
    per optimiser step and learn slower per epoch), RAM cache, no dataloader workers, no plots, and
    validation only after the last epoch unless asked (it is the slowest part of a short epoch).
    """
    import time

    model = load_yolo(arch)
    t0 = time.perf_counter()
    with ultralytics_threads(threads):
        model.train(
            data=str(data_yaml),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            nbs=batch,
            workers=0,
            cache="ram",
            device=device,
            project=str(work_dir / "runs"),
            name="train",
            exist_ok=True,
            seed=seed,
            deterministic=True,
            plots=False,
            val=validate_every_epoch,
            amp=False,
            verbose=False,
        )
    seconds = time.perf_counter() - t0
    trainer = model.trainer
    weights = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    raw = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, int | float)}
    metrics = {
        "mAP50": raw.get("metrics/mAP50(B)", 0.0),
        "mAP50-95": raw.get("metrics/mAP50-95(B)", 0.0),
        "precision": raw.get("metrics/precision(B)", 0.0),
        "recall": raw.get("metrics/recall(B)", 0.0),
    }
    if "metrics/mAP50(M)" in raw:
        metrics["mask_mAP50"] = raw["metrics/mAP50(M)"]
        metrics["mask_mAP50-95"] = raw["metrics/mAP50-95(M)"]
    return TrainResult(weights=weights, metrics=metrics, epochs=epochs, seconds=seconds, task=str(model.task))


# Ultralytics checkpoint keys that record when/where a run happened, not what it learned.
_VOLATILE_CHECKPOINT_KEYS = ("date", "git", "train_results")


def canonical_checkpoint(src: Path, dst: Path, work_dir: Path) -> None:
    """Re-save a trained Ultralytics checkpoint so identical weights give identical bytes.

    Ultralytics stamps the save date, a per-epoch timing table (``train_results``) and the run's
    temporary paths (``train_args``, the model's ``args``) into the pickle, so two identical trainings
    differ in bytes and even in size. This keeps everything a loader reads (model, class names,
    task, metrics, version) and replaces paths under ``work_dir`` (the temporary training folder) by
    their relative form. It loads
    ``src`` the safe way, which also proves the file loads under ``load_yolo``.
    """
    import io

    import torch
    from ultralytics.nn.tasks import torch_safe_load

    ckpt, _ = torch_safe_load(str(src), safe_only=True)
    roots = (str(work_dir), str(Path(work_dir).resolve()))
    clean = {k: v for k, v in ckpt.items() if k not in _VOLATILE_CHECKPOINT_KEYS}
    clean["train_args"] = _relative_paths(ckpt.get("train_args") or {}, roots)
    model = clean.get("model")
    if model is not None and isinstance(getattr(model, "args", None), dict):
        model.args = _relative_paths(model.args, roots)
    buffer = io.BytesIO()  # a buffer, not a path: torch names the archive's records after the file
    torch.save(clean, buffer)
    Path(dst).write_bytes(buffer.getvalue())


def _relative_paths(args: dict[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
    """``args`` with every string under one of ``roots`` made relative to it (``./dataset/data.yaml``)."""

    def rel(value: Any) -> Any:
        for root in roots:
            if isinstance(value, str) and root in value:
                value = value.replace(root, ".")
        return value

    return {k: rel(v) for k, v in args.items()}
