"""Drop composite detections: one box around two or more objects the detector also found one by one.

Where same-coloured shapes touch or overlap, a detector often returns the objects *and* a box around
the group, sometimes scoring the group highest. A tracker then follows the group box with one of
the objects' IDs, and the object itself starts a new ID (an identity switch the repair step cannot
undo, since both tracks live on). A detection is a composite when at least two other detections of
the same frame lie inside it (``min_inside`` of each one's box area) and their union box is the
composite's box (IoU >= ``min_union_iou``); it is dropped, whatever its score. The official code has
no such rule (SAM2 prompts with the group box segment both objects as one); it is ours, and a
detection that holds a single other one (a person holding a bag) is never touched. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from stvg.config import DetectParams
from stvg.geometry import box_area, box_iou
from stvg.records import Detection

T = TypeVar("T")


def composite_indices(
    boxes: Sequence[Sequence[float]], *, min_inside: float = 0.85, min_union_iou: float = 0.8
) -> list[int]:
    """Indices of the boxes (xyxy) that are composites of at least two of the others."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(b)
    if n < 3:
        return []
    area = box_area(b)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    inside = inter / np.maximum(area[None, :], 1e-9)  # [i, j]: share of box j inside box i
    out: list[int] = []
    for i in range(n):
        parts = [j for j in range(n) if j != i and inside[i, j] >= min_inside and area[j] < area[i]]
        if len(parts) < 2:
            continue
        union = np.concatenate([b[parts, :2].min(axis=0), b[parts, 2:].max(axis=0)])
        if float(box_iou(union, b[i])) >= min_union_iou:
            out.append(i)
    return out


def drop_composites(
    detections: Sequence[tuple[Detection, T]], *, min_inside: float = 0.85, min_union_iou: float = 0.8
) -> tuple[list[tuple[Detection, T]], int]:
    """The frame's detections without its composites (``composite_indices``), and how many were dropped."""
    boxes = [d.box for d, _ in detections]
    drop = set(composite_indices(boxes, min_inside=min_inside, min_union_iou=min_union_iou))
    return [x for i, x in enumerate(detections) if i not in drop], len(drop)


def prompts_of(
    detections: Sequence[tuple[Detection, T]], p: DetectParams
) -> tuple[list[tuple[Detection, T]], int]:
    """The detections that become prompts under ``prompt.detect`` (both backends), and how many were dropped."""
    if not p.drop_composites:
        return list(detections), 0
    return drop_composites(
        detections, min_inside=p.composite_min_inside, min_union_iou=p.composite_min_union_iou
    )
