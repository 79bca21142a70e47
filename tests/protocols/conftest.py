"""Shared helpers: random HC-STVG annotations in the release format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TOL = 1e-9  # agreement required between the project and the reference implementations
W, H = 160, 120  # frame size of the random HC-STVG videos


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def random_box(rng: np.random.Generator, height: int | None = None) -> list[int]:
    """An [x, y, w, h] box inside the W x H frame (of the given height)."""
    w, h = int(rng.integers(2, W // 2)), height or int(rng.integers(2, H // 2))
    return [int(rng.integers(0, W - w)), int(rng.integers(0, H - h)), w, h]


def hcstvg_entry(
    rng: np.random.Generator, img_num: int, st_frame: int, length: int, fixed: list[int] | None = None
) -> dict:
    """One HC-STVG v2 entry (1-based st_frame, xywh boxes, 20-s video of img_num frames)."""
    fps = img_num / 20.0
    boxes = [list(fixed) if fixed else random_box(rng) for _ in range(length)]
    return {
        "bbox": boxes,
        "st_time": round((st_frame - 1) / fps + float(rng.uniform(0, 0.4)) / fps, 4),
        "ed_time": round((st_frame - 1 + length) / fps - float(rng.uniform(0, 0.4)) / fps, 4),
        "img_num": img_num,
        "st_frame": st_frame,
        "English": "The man in the grey coat turns around.",
        "img_size": [H, W],
    }
