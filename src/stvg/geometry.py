"""Box, mask and temporal IoU in numpy: the one geometry shared by identity, rewards and metrics.

Boxes are xyxy in pixels with areas (x2 - x1) * (y2 - y1), no +1 (the official HC-STVG, TubeDETR and
ST-Align definition), in float64. A mask's box ends one past its last pixel (``mask_to_box``); the
official STVG-R1 scripts end it on the last pixel (``last_pixel_box``), and its label script scores
boxes with the +1 convention (``box_iou_plus_one``, used by ``label.box_convention: official``).
Temporal IoU is in seconds; a reversed or zero-length union scores 0 (REFERENCE 3.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def box_area(boxes: ArrayLike) -> np.ndarray:
    """Area of xyxy boxes, 0 for degenerate ones. (..., 4) -> (...)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Element-wise IoU of broadcastable xyxy box arrays (..., 4) -> (...); 0 where the union is empty.

    >>> float(box_iou([0, 0, 10, 10], [5, 0, 15, 10]))
    0.3333333333333333
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


def box_iou_plus_one(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Element-wise IoU with the +1 pixel convention of the official ``trainjson.py``.

    Widths and heights are x2 - x1 + 1 (a box covers the pixels x1..x2 inclusive); the intersection
    is clipped at 0; 0 where the union is not positive.

    >>> float(box_iou_plus_one([0, 0, 9, 9], [5, 0, 14, 9]))
    0.3333333333333333
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def last_pixel_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A mask box ending one past its last pixel (``mask_to_box``) as the official ``rle_to_bbox``
    writes it, ending on the last pixel: x2 - 1, y2 - 1."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2 - 1.0, y2 - 1.0)


def pairwise_box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU matrix between box sets (N, 4) and (M, 4) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return box_iou(a[:, None, :], b[None, :, :])


def temporal_iou(
    pred_start: ArrayLike, pred_end: ArrayLike, gt_start: ArrayLike, gt_end: ArrayLike
) -> np.ndarray:
    """Temporal IoU of spans in seconds, vectorised; 0 for reversed predictions or an empty union.

    NaN inputs (a missing or unparsable prediction) score 0.

    >>> float(temporal_iou(5.0, 15.0, 10.0, 20.0))
    0.3333333333333333
    >>> float(temporal_iou(15.0, 5.0, 10.0, 20.0))
    0.0
    """
    ps, pe, gs, ge = (np.asarray(x, dtype=np.float64) for x in (pred_start, pred_end, gt_start, gt_end))
    inter = np.clip(np.minimum(pe, ge) - np.maximum(ps, gs), 0, None)
    union = np.maximum(pe, ge) - np.minimum(ps, gs)
    valid = (pe >= ps) & (union > 0) & np.isfinite(union) & np.isfinite(inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(valid, inter / np.where(valid, union, 1.0), 0.0)
    return iou


def mask_to_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight xyxy box of a boolean mask (x2/y2 one past the last pixel), None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def pairwise_mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boolean mask stacks (N, H, W) and (M, H, W) -> (N, M)."""
    fa = np.asarray(a, dtype=bool).reshape(len(a), -1).astype(np.float32)
    fb = np.asarray(b, dtype=bool).reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0).astype(np.float64)


def pairwise_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of each mask in ``a`` covered by each mask in ``b``: |a∩b| / |a|, (N, M)."""
    fa = np.asarray(a, dtype=bool).reshape(len(a), -1).astype(np.float32)
    fb = np.asarray(b, dtype=bool).reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    area = fa.sum(1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0).astype(np.float64)
