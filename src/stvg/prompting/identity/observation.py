"""What every backend produces and identity logic reads: one instance on one tracked frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]  # xyxy, pixels


@dataclass(frozen=True)
class Observation:
    """One instance on one tracked frame; ``payload`` is opaque here (the engine keeps the mask RLE)."""

    box: Box  # xyxy, pixels
    area: int  # mask pixels
    score: float
    payload: Any = None
    label: int = -1  # detector class id (-1: unknown); fragments of different classes are never merged
    filled: bool = False  # True: not observed, inferred (gap filling, colour extension)
    # the backend's appearance descriptor, read only by the backend's own ``Similarity``
    feature: Any = field(default=None, compare=False, repr=False)


Tracks = dict[int, dict[int, Observation]]  # raw id -> frame position -> observation


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """Filled box as a bool (H, W) mask: the stand-in mask of a box-only detection."""
    m = np.zeros((height, width), dtype=bool)
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x2 > x1 and y2 > y1:
        m[y1:y2, x1:x2] = True
    return m


def with_payload(obs: Observation, payload: Any) -> Observation:
    """Copy of an observation carrying another payload."""
    return replace(obs, payload=payload)


def track_label(frames: dict[int, Observation]) -> int:
    """The track's most frequent known class id (-1 when none is known)."""
    labels = [o.label for o in frames.values() if o.label >= 0]
    return max(set(labels), key=labels.count) if labels else -1


def count_new_ids(tracks: Tracks) -> int:
    """Number of distinct instances that appear after the first tracked frame (the churn numerator)."""
    if not tracks:
        return 0
    first = min(min(f) for f in tracks.values())
    return sum(1 for f in tracks.values() if min(f) > first)
