"""Keyframe matching: which of a re-detection's masks are instances already tracked, and which are new.

A detection whose mask has IoU >= ``id_iou`` with a tracked mask is that instance (the official code's
rule, 0.4); one overlapping a detection already accepted as new is its duplicate. The official
containment rule (a mask covering >= ``containment_ratio`` of another: the larger one wins and the
old ID is deleted) is available but off by default, because it silently switches IDs; when on,
each replacement is returned so it lands in the video's repair log. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stvg.geometry import pairwise_containment, pairwise_mask_iou


@dataclass(frozen=True)
class KeyframeDecision:
    """What to do with one keyframe's detections."""

    new: tuple[int, ...]  # detection indices that start a new instance
    matched: dict[int, int]  # detection index -> existing instance id
    duplicates: tuple[int, ...]  # detection indices dropped as duplicates of another new detection
    replaced: dict[int, int] = field(default_factory=dict)  # existing id -> detection index (containment)
    dropped_contained: tuple[int, ...] = ()  # detections dropped because contained in a larger existing mask


@dataclass(frozen=True)
class _Overlaps:
    """Pairwise overlaps of a keyframe's detection masks with each other and with the tracked masks."""

    ids: list[int]  # tracked instance ids, in column order
    iou_tracked: np.ndarray  # (N, K)
    iou_detections: np.ndarray  # (N, N)
    cover: np.ndarray | None  # (N, K) max(|d∩e|/|d|, |d∩e|/|e|), only for the containment rule
    det_area: np.ndarray  # (N,)
    tracked_area: np.ndarray  # (K,)


def _overlaps(det: np.ndarray, existing: Mapping[int, np.ndarray], containment: bool) -> _Overlaps:
    ids = list(existing)
    n = len(det)
    ex = (
        np.stack([np.asarray(existing[i], dtype=bool) for i in ids])
        if ids
        else np.zeros((0, *det.shape[1:]), bool)
    )
    cover = None
    if containment and ids:
        cover = np.maximum(pairwise_containment(det, ex), pairwise_containment(ex, det).T)
    return _Overlaps(
        ids=ids,
        iou_tracked=pairwise_mask_iou(det, ex) if ids else np.zeros((n, 0)),
        iou_detections=pairwise_mask_iou(det, det),
        cover=cover,
        det_area=det.reshape(n, -1).sum(1),
        tracked_area=ex.reshape(len(ids), -1).sum(1) if ids else np.zeros(0, dtype=np.int64),
    )


def match_keyframe(
    detection_masks: Sequence[np.ndarray],
    existing: Mapping[int, np.ndarray],
    *,
    id_iou: float,
    containment: bool = False,
    containment_ratio: float = 0.6,
    scores: Sequence[float] | None = None,
) -> KeyframeDecision:
    """Split a keyframe's detections into matched, new, duplicate (and, optionally, containment) cases.

    Detections are taken in descending score order; a detection is compared with the existing masks
    and with the detections already accepted as new, so two detections of one object give one ID.
    """
    n = len(detection_masks)
    if n == 0:
        return KeyframeDecision(new=(), matched={}, duplicates=())
    order = list(range(n)) if scores is None else sorted(range(n), key=lambda i: -float(scores[i]))
    ov = _overlaps(np.stack([np.asarray(m, dtype=bool) for m in detection_masks]), existing, containment)
    new: list[int] = []
    matched: dict[int, int] = {}
    duplicates: list[int] = []
    replaced: dict[int, int] = {}
    dropped: list[int] = []
    for i in order:
        if ov.iou_tracked.shape[1] and ov.iou_tracked[i].max() >= id_iou:
            matched[i] = ov.ids[int(ov.iou_tracked[i].argmax())]
        elif any(ov.iou_detections[i, j] >= id_iou for j in new):
            duplicates.append(i)
        elif (k := _contained(ov, i, replaced, containment_ratio)) is None:
            new.append(i)
        elif ov.det_area[i] > ov.tracked_area[k]:  # the larger mask wins (official code)
            replaced[ov.ids[k]] = i
            new.append(i)
        else:
            dropped.append(i)
    return KeyframeDecision(
        new=tuple(new),
        matched=matched,
        duplicates=tuple(duplicates),
        replaced=replaced,
        dropped_contained=tuple(dropped),
    )


def _contained(ov: _Overlaps, i: int, replaced: Mapping[int, int], ratio: float) -> int | None:
    """Column of the tracked mask detection ``i`` contains or lies in (containment rule), or None."""
    if ov.cover is None:
        return None
    cover = ov.cover[i].copy()
    cover[[k for k, e in enumerate(ov.ids) if e in replaced]] = 0.0
    if cover.size and cover.max() >= ratio:
        return int(cover.argmax())
    return None
