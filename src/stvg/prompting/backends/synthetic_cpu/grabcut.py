"""Box -> mask refinement for box-only detectors: the CPU backend's stand-in for SAM's box prompt.

A box-only YOLO gives boxes, and a filled box is a poor mask: the overlay's ID anchor may land off the
object, the mask database stores rectangles, and the box itself is only as sharp as the detector's
input size (the embedded default detects at 192 px on 320-px frames: ~1 px of error per side, box
IoU ~0.92 with exact boxes). The paper turns boxes into masks with SAM2's image predictor; without
SAM weights the CPU backend runs OpenCV's GrabCut on each box instead:

- the region of interest is the box grown by ``margin`` (a fraction of its longer side, >= 3 px); the
  band outside ``box + slack`` is definite background, the band between the box and ``box + slack``
  probable background, the box probable foreground and a small core at its centre definite foreground;
- GrabCut fits its colour models on that region at native resolution and labels the pixels;
- the mask is the foreground component at the core (or the largest one), and the refined box is its
  tight box.

A refinement that looks wrong (foreground covering less than ``min_fill`` of the box, or a refined
box with IoU < ``min_box_iou`` with the detector's) is discarded for the filled box: refining never
makes a detection worse than the detector had it. Pure numpy + OpenCV, no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from stvg.geometry import box_iou, mask_to_box, pairwise_mask_iou
from stvg.prompting.identity import box_mask
from stvg.records import Detection

GRABCUT_SEED = 0  # OpenCV RNG seed set before every GrabCut call (see ``refine_box``)


@dataclass(frozen=True)
class RefineParams:
    """GrabCut refinement knobs (defaults measured on the synthetic benchmark)."""

    margin: float = 0.15  # ROI = box grown by this fraction of its longer side (>= 3 px)
    slack: float = 0.06  # the box may grow by this fraction of its longer side (>= 2 px)
    iterations: int = 2  # GrabCut iterations
    min_fill: float = 0.25  # foreground share of the box below which the refinement is discarded
    min_box_iou: float = 0.5  # refined vs detector box IoU below which the refinement is discarded
    duplicate_iou: float = 0.7  # refined masks overlapping this much are one object: keep the best score
    max_roi_px: int = 96 * 96  # larger regions are segmented downscaled to this many pixels (~60 ms)


def _grow(box: Sequence[float], by: float, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (
        max(0, int(np.floor(x1 - by))),
        max(0, int(np.floor(y1 - by))),
        min(width, int(np.ceil(x2 + by))),
        min(height, int(np.ceil(y2 + by))),
    )


def _core(box: Sequence[float]) -> tuple[int, int, int, int]:
    """The small square at a box's centre that is taken to be the object's own pixels (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
    r = max(1, int(min(x2 - x1, y2 - y1) / 6))
    return cx - r, cy - r, cx + r + 1, cy + r + 1


def refine_box(
    image_bgr: np.ndarray,
    box: Sequence[float],
    p: RefineParams = RefineParams(),
    others: Sequence[Sequence[float]] = (),
) -> np.ndarray | None:
    """Bool (H, W) mask of the object in ``box`` (xyxy pixels), or None when refinement fails.

    ``others`` are the frame's other detections: the cores of those whose core does not overlap
    this box's core (another object) are definite background, so a box that spans two touching
    objects settles on the one at its centre instead of taking both (GrabCut alone only knows the
    background's colours).
    """
    h, w = image_bgr.shape[:2]
    side = max(box[2] - box[0], box[3] - box[1])
    if side < 4:
        return None
    roi_box = _grow(box, max(3.0, p.margin * side), w, h)
    labels, centre = _seed_labels(box, roi_box, _grow(box, max(2.0, p.slack * side), w, h), others, w, h)
    if labels is None:
        return None
    rx1, ry1, rx2, ry2 = roi_box
    fg = _grabcut(np.ascontiguousarray(image_bgr[ry1:ry2, rx1:rx2]), labels, p)
    if fg is None:
        return None
    import cv2

    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=4)
    if n <= 1:
        return None
    cx, cy = centre
    k = comp[cy, cx] if comp[cy, cx] > 0 else 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = np.zeros((h, w), dtype=bool)
    mask[ry1:ry2, rx1:rx2] = comp == k
    refined = mask_to_box(mask)
    box_area = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
    if refined is None or mask.sum() < p.min_fill * box_area or box_iou(refined, box) < p.min_box_iou:
        return None
    return mask


def _seed_labels(
    box: Sequence[float],
    roi: tuple[int, int, int, int],
    slack: tuple[int, int, int, int],
    others: Sequence[Sequence[float]],
    width: int,
    height: int,
) -> tuple[np.ndarray | None, tuple[int, int]]:
    """GrabCut's initial labels over the ROI, and the box centre in ROI pixels (None: nothing to learn
    the background from, the box fills the frame)."""
    import cv2

    rx1, ry1, rx2, ry2 = roi
    sx1, sy1, sx2, sy2 = slack
    bx1, by1, bx2, by2 = _grow(box, 0.0, width, height)
    labels = np.full((ry2 - ry1, rx2 - rx1), cv2.GC_BGD, dtype=np.uint8)
    labels[sy1 - ry1 : sy2 - ry1, sx1 - rx1 : sx2 - rx1] = cv2.GC_PR_BGD
    labels[by1 - ry1 : by2 - ry1, bx1 - rx1 : bx2 - rx1] = cv2.GC_PR_FGD
    own = _core((bx1, by1, bx2, by2))
    for other in others:
        ox1, oy1, ox2, oy2 = _core(other)
        if ox1 < own[2] and own[0] < ox2 and oy1 < own[3] and own[1] < oy2:
            continue  # its core is ours too
        ox1, oy1 = max(ox1 - rx1, 0), max(oy1 - ry1, 0)
        ox2, oy2 = min(ox2 - rx1, labels.shape[1]), min(oy2 - ry1, labels.shape[0])
        if ox2 > ox1 and oy2 > oy1:
            labels[oy1:oy2, ox1:ox2] = cv2.GC_BGD
    centre = ((own[0] + own[2]) // 2 - rx1, (own[1] + own[3]) // 2 - ry1)
    labels[own[1] - ry1 : own[3] - ry1, own[0] - rx1 : own[2] - rx1] = cv2.GC_FGD
    if (labels == cv2.GC_BGD).sum() < 8:
        return None, centre
    return labels, centre


def _grabcut(roi: np.ndarray, labels: np.ndarray, p: RefineParams) -> np.ndarray | None:
    """Foreground (uint8 0/1) of the ROI after GrabCut, at the ROI's resolution; None on an OpenCV error."""
    import cv2

    roi_h, roi_w = labels.shape
    scale = min(1.0, float(np.sqrt(p.max_roi_px / (roi_h * roi_w))))
    if scale < 1.0:  # GrabCut's cost grows with the ROI: large boxes are segmented at a lower resolution
        size = (max(8, round(roi_w * scale)), max(8, round(roi_h * scale)))
        roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means++ drawn from OpenCV's process-wide RNG, whose state
    # every earlier call advanced: reseeding makes the mask a function of this box alone, not of the
    # boxes (and videos) the process refined before.
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(roi, labels, None, bgd, fgd, p.iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1.0:
        fg = cv2.resize(fg, (roi_w, roi_h), interpolation=cv2.INTER_NEAREST)
    return fg


def refine_detections(
    image_rgb: np.ndarray,
    detections: Sequence[tuple[Detection, np.ndarray | None]],
    p: RefineParams = RefineParams(),
) -> tuple[list[tuple[Detection, np.ndarray]], int]:
    """Masks for box-only detections (and their boxes tightened to them); returns them and the count refined.

    Detections that already carry a mask (a -seg model) are kept as they are; a failed refinement
    keeps the detector's box with its filled-box mask. Two boxes may refine onto one object (a box
    spanning two touching shapes settles on the one at its centre): of refined masks overlapping by
    mask IoU >= ``p.duplicate_iou`` only the higher-scoring detection is kept.
    """
    h, w = image_rgb.shape[:2]
    bgr = np.ascontiguousarray(image_rgb[..., ::-1])
    out: list[tuple[Detection, np.ndarray]] = []
    refined = 0
    boxes = [d.box for d, _ in detections]
    for i, (det, mask) in enumerate(detections):
        if mask is not None:
            out.append((det, np.asarray(mask, dtype=bool)))
            continue
        m = refine_box(bgr, det.box, p, others=boxes[:i] + boxes[i + 1 :])
        if m is None:
            out.append((det, box_mask(det.box, h, w)))
            continue
        box = mask_to_box(m)
        assert box is not None
        out.append((replace(det, box=box), m))
        refined += 1
    return _drop_duplicates(out, p.duplicate_iou), refined


def _drop_duplicates(
    dets: list[tuple[Detection, np.ndarray]], min_iou: float
) -> list[tuple[Detection, np.ndarray]]:
    if len(dets) < 2:
        return dets
    order = sorted(range(len(dets)), key=lambda i: -dets[i][0].score)
    masks = np.stack([m for _, m in dets])
    iou = pairwise_mask_iou(masks, masks)
    kept: list[int] = []
    for i in order:
        if all(iou[i, j] < min_iou for j in kept):
            kept.append(i)
    return [dets[i] for i in sorted(kept)]
