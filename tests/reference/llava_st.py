"""LLaVA-ST's ST-Align STVG scoring (``inference/src/metrics.py`` ``eval_stvg``, ``utils.py``), restated.

An entry has ``split`` = [s0, s1] (inclusive frames), GT times ``<s>``/``<e>`` as frames and GT boxes
on sampled frames. The predicted span is given on the same [0, 1] scale as the normalised GT; the
predicted boxes are keyed by frame. Only the first 2,000 entries of a file are scored. The official
code asserts that every box sits on one of the 100 sampled frames (boxes elsewhere are left out
here) and divides by zero for a one-frame split.
"""

from __future__ import annotations

FIRST_ENTRIES = 2000


def sampled_frames(split: tuple[int, int], num_frames: int = 100) -> list[int]:
    """s0 + round(i / (n - 1) * (duration - 1)) for i < n, duration = s1 - s0 + 1."""
    duration = split[1] - split[0] + 1
    return [split[0] + round((i / (num_frames - 1)) * (duration - 1)) for i in range(num_frames)]


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """``temporal_iou``: max(min end - max start, 0) / (max end - min start), at least 0."""
    inter = max(min(a[1], b[1]) - max(a[0], b[0]), 0)
    return max(0, inter / (max(a[1], b[1]) - min(a[0], b[0])))


def box_iou(a: list[float], b: list[float]) -> float:
    """``iou``: xyxy areas without +1, intersection clamped at 0, 0 for a zero union."""
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union != 0 else 0


def entry_scores(
    split: tuple[int, int],
    gt_span: tuple[int, int],
    gt_boxes: dict[int, list[float]],
    pred_span: tuple[float, float],
    pred_boxes: dict[int, list[float]],
) -> tuple[float, float]:
    """(tIoU, vIoU = "stiou") of one entry; GT end-points normalised and rounded to 3 decimals."""
    duration = split[1] - split[0] + 1
    gt_norm = tuple(round((f - split[0]) / (duration - 1), 3) for f in gt_span)
    tiou = temporal_iou(gt_norm, pred_span)  # type: ignore[arg-type]
    grid = set(sampled_frames(split))
    gt_keys = {f for f in gt_boxes if f in grid}
    pred_keys = {f for f in pred_boxes if f in grid}
    total = sum(box_iou(gt_boxes[f], pred_boxes[f]) for f in gt_keys & pred_keys)
    return tiou, total / max(len(gt_keys | pred_keys), 1)
