"""MeViS region similarity J, boundary F-measure F and J&F (REFERENCE 4 and Part 3, section 9).

The definitions follow the DAVIS/MeViS evaluation code (``davis2017/metrics.py``):

- J_t = |P ∩ G| / |P ∪ G|, and 1 when both masks are empty;
- F_t: 1-pixel boundaries by ``seg2bmap`` (XOR with the right, lower and lower-right neighbours),
  each dilated with a disk of radius ceil(0.008 * image diagonal) px; precision / recall are the
  matched shares of the predicted / GT boundary pixels; both boundaries empty -> 1, exactly one
  empty -> 0, P + R = 0 -> 0;
- per expression, J and F are means over **all** frames of the video (none dropped); the GT of an
  expression is the union of its objects' masks; dataset J and F are means over expressions and
  J&F = (J + F) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal (MeViS/DAVIS bound_th)


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Disk radius in pixels: ceil(bound_th * diagonal) (6 px at 640x360, 8 px at 854x480)."""
    return math.ceil(bound_th * math.hypot(height, width))


def disk(radius: int) -> np.ndarray:
    """Disk structuring element {(x, y): x^2 + y^2 <= r^2}, as ``skimage.morphology.disk``."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """1-pixel boundary map of a binary mask: pixels that differ from a right/lower/lower-right neighbour."""
    seg = np.asarray(mask, dtype=bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """J per frame for (T, H, W) or (H, W) boolean masks; 1 where both masks are empty."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    axes = (-2, -1)
    inter = np.logical_and(p, g).sum(axis=axes)
    union = np.logical_or(p, g).sum(axis=axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of one frame (H, W) with the empty-boundary rules of the module docstring."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and GT {g.shape} masks differ in size")
    bp, bg = seg2bmap(p), seg2bmap(g)
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    kernel = disk(boundary_radius(*p.shape, bound_th=bound_th))
    dil_p = cv2.dilate(bp.view(np.uint8), kernel).astype(bool)
    dil_g = cv2.dilate(bg.view(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(bp & dil_g) / n_p
    recall = np.count_nonzero(bg & dil_p) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def frame_scores(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of every frame of (T, H, W) prediction and GT masks -> ((T,), (T,))."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and GT {g.shape} mask stacks differ in shape")
    j = region_similarity(p, g)
    f = np.array([boundary_f(p[t], g[t], bound_th) for t in range(len(p))], dtype=np.float64)
    return j, f


def expression_scores(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> tuple[float, float]:
    """Mean J and mean F of one expression over all frames of its video."""
    j, f = frame_scores(pred, gt, bound_th)
    if len(j) == 0:
        raise ValueError("an expression needs at least one frame")
    return float(j.mean()), float(f.mean())


def decode_union(rles: Sequence[dict[str, Any] | None], height: int, width: int) -> np.ndarray:
    """GT mask of one frame: the union of the given COCO RLEs (None = object absent) -> (H, W) bool."""
    from pycocotools import mask as mask_utils

    out = np.zeros((height, width), dtype=bool)
    for rle in rles:
        if rle is None:
            continue
        r = dict(rle)
        if isinstance(r.get("counts"), str):
            r["counts"] = r["counts"].encode("ascii")
        m = mask_utils.decode(r).astype(bool)
        if m.shape != out.shape:
            raise ValueError(f"RLE of size {m.shape} in a {height}x{width} video")
        out |= m
    return out


def aggregate_jf(per_expression: Sequence[tuple[float, float]]) -> dict[str, float | int]:
    """Dataset J, F (means over expressions) and J&F = (J + F) / 2.

    >>> aggregate_jf([(1.0, 0.5), (0.5, 0.5)])
    {'n': 2, 'J': 0.75, 'F': 0.5, 'J&F': 0.625}
    """
    n = len(per_expression)
    if n == 0:
        return {"n": 0, "J": 0.0, "F": 0.0, "J&F": 0.0}
    arr = np.asarray(per_expression, dtype=np.float64)
    j, f = float(arr[:, 0].mean()), float(arr[:, 1].mean())
    return {"n": n, "J": j, "F": f, "J&F": (j + f) / 2}
