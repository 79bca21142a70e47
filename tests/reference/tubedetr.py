"""TubeDETR's video evaluators (``datasets/hcstvg_eval.py``, ``vidstg_eval.py``), restated.

Frames are numbered as the evaluator numbers them: for HC-STVG the annotation's own 1-based
``st_frame`` is used as a frame index (the GT tube is ``[st_frame, st_frame + len(bbox))``) and the
candidate frames are ``range(0, frame_count - 1)`` at ``video_fps = frame_count / 20``; for VidSTG
the candidates are ``used_segment`` ``[begin_fid, end_fid)`` and the tube ``temporal_gt``
``[begin_fid, end_fid)``. Predicted spans are ``[start, end)`` too. TubeDETR predicts a box on every
sampled frame and raises otherwise; here a frame without a predicted box scores IoU 0.
"""

from __future__ import annotations


def sampled_frames(start: int, end: int, video_fps: float, fps: float = 5, max_len: int = 200) -> list[int]:
    """The first candidate, then every candidate whose int(f * rate) passes the last kept one's."""
    rate = fps / video_fps
    kept = [start]
    for frame in range(start, end):
        if int(kept[-1] * rate) < int(frame * rate):
            kept.append(frame)
    if len(kept) > max_len:
        kept = [kept[(j * len(kept)) // max_len] for j in range(max_len)]
    return kept


def box_iou(a: list[float], b: list[float]) -> float:
    """torchvision-style IoU: areas (x2 - x1)(y2 - y1), intersection clamped at 0."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def video_scores(
    frames: list[int],
    gt_sted: tuple[int, int],
    gt_boxes: dict[int, list[float]],
    pred_sted: tuple[int, int],
    pred_boxes: dict[int, list[float]],
) -> tuple[float, float]:
    """(tIoU on raw frames, vIoU on the sampled frames) of one video; spans end-exclusive."""
    max_start, min_end = max(gt_sted[0], pred_sted[0]), min(gt_sted[1], pred_sted[1])
    min_start, max_end = min(gt_sted[0], pred_sted[0]), max(gt_sted[1], pred_sted[1])
    if min_end <= max_start:
        tiou = 0.0
    else:
        inter = min_end - max_start
        tiou = inter / ((gt_sted[1] - gt_sted[0]) + (pred_sted[1] - pred_sted[0]) - inter)
    union = [f for f in frames if min_start <= f < max_end]
    both = {f for f in frames if max_start <= f < min_end}
    total = 0.0
    for f in frames:
        if gt_sted[0] <= f < gt_sted[1] and f in both and f in pred_boxes:
            total += box_iou(pred_boxes[f], gt_boxes[f])
    return tiou, total / max(len(union), 1)
