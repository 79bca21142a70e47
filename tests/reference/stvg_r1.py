"""The official STVG-R1 scripts, restated: answer parsing and rewards (``src/open_r1/grpo_video.py``),
evaluation (``evaluate.py``) and label voting (``preprocess/trainjson.py``).

Masks are given as ``{frame: {instance id: box}}`` for the frames that have a mask file (every frame
of the video), boxes as ``rle_to_bbox`` / ``mask_to_bbox`` write them: the last column and row of
the mask (no +1); dict order is the instance order. HC-STVG annotations are the release's:
``st_frame`` (1-based), ``bbox`` a list of ``[x, y, w, h]``.

Where the official code raises, these functions raise too (``evaluate.py`` then drops the sample
from every mean): a zero-length time union (ZeroDivisionError).
"""

from __future__ import annotations

import re
from collections import Counter

ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
TARGET = re.compile(r"Target ID:\s*(\d+)", re.IGNORECASE)
RANGE = re.compile(r"Time range:\s*(\d+\.?\d*)\s*(?:to|and)\s*(\d+\.?\d*)", re.IGNORECASE)
THINK_ANSWER = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)

Box = list[float]
Masks = dict[int, dict[int, Box]]


# ----------------------------------------------------------------------------------------------- training


def parse(output: str) -> tuple[int | None, float | None, float | None]:
    """(id, start, end) from the last answer block, or (None, None, None) unless all three are read."""
    blocks = ANSWER_BLOCK.findall(output)
    if not blocks:
        return None, None, None
    body = blocks[-1].strip()
    found_id = TARGET.search(body)
    found_range = RANGE.search(body)
    if found_id is None or found_range is None:
        return None, None, None
    return int(found_id.group(1)), float(found_range.group(1)), float(found_range.group(2))


def iou_reward_parts(output: str, gt_id: int, gt_start: float, gt_end: float) -> tuple[float, float]:
    """The two summands of the official ``iou`` reward: (time IoU, 1.0 for the right ID)."""
    pred_id, start, end = parse(output)
    time = 0.0
    if start is not None and end is not None:
        inter = max(0, min(end, gt_end) - max(start, gt_start))
        union = max(end, gt_end) - min(start, gt_start)
        time = inter / union if union > 0 else 0.0
    return time, 1.0 if pred_id == gt_id else 0.0


def format_reward(output: str) -> float:
    """1.0 when the stripped completion is exactly think-then-answer (case-sensitive tags)."""
    return 1.0 if THINK_ANSWER.fullmatch(output.strip()) else 0.0


def normalize_sentence(sentence: str) -> str:
    """The training sentence: stripped, lower-cased, one trailing period removed."""
    text = sentence.strip().lower()
    text = text.removesuffix(".")
    return text


# ----------------------------------------------------------------------------------------------- evaluation


def temporal_iou(gt: tuple[float, float], start: float, end: float) -> float:
    """evaluate.py's tIoU (clipped at 0 for the mean); raises ZeroDivisionError on a zero union."""
    s, e = gt
    return max((min(e, end) - max(s, start)) / (max(e, end) - min(s, start)), 0)


def box_iou(a: Box | None, b: Box | None) -> float:
    """``calculate_bbox_iou``: xyxy, no +1, 0 for a missing box or no overlap."""
    if a is None or b is None:
        return 0.0
    left, top, right, bottom = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if right <= left or bottom <= top:
        return 0.0
    inter = (right - left) * (bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union == 0 else inter / union


def _largest(objects: dict[int, Box]) -> Box | None:
    best, best_area = None, 0
    for box in objects.values():
        area = (box[2] - box[0]) * (box[3] - box[1])
        if area > best_area:
            best, best_area = box, area
    return best


def _best_overlap(objects: dict[int, Box], reference: Box) -> tuple[Box | None, float]:
    best, best_iou = None, 0.0
    for box in objects.values():
        iou = box_iou(box, reference)
        if iou > best_iou:
            best, best_iou = box, iou
    return best, best_iou


def _continuation(objects: dict[int, Box], current: Box) -> Box | None:
    box, iou = _best_overlap(objects, current)
    return box if iou > 0 else _largest(objects)


def _from_frame(masks: Masks, frame: int, pred_id: int, source: int | None) -> Box | None:
    """The ID's box on ``source``, or the box of ``frame`` overlapping it best."""
    if source is None or source not in masks or pred_id not in masks[source]:
        return None
    reference = masks[source][pred_id]
    if frame not in masks:
        return reference
    box, _ = _best_overlap(masks[frame], reference)
    return reference if box is None else box


def predicted_box(
    masks: Masks, frame: int, pred_id: int, state: dict, frames_with_id: list[int]
) -> Box | None:
    """One frame of the official loop with its fallbacks; ``state`` holds current box / last frame."""
    objects = masks[frame]
    if pred_id in objects:
        state["current"], state["last"] = objects[pred_id], frame
        return objects[pred_id]
    box = None
    if state["current"] is not None:
        box = _continuation(objects, state["current"])
        if box is None:
            box = _from_frame(masks, frame, pred_id, state["last"])
            if box is not None:
                state["current"] = box
    elif frames_with_id:
        closest = min(frames_with_id, key=lambda g: abs(g - frame))
        box = _from_frame(masks, frame, pred_id, closest)
        if box is not None:
            state["current"] = box
            for g in frames_with_id:
                if g <= frame:
                    state["last"] = g
                else:
                    break
    return box if box is not None else _largest(objects)


def spatial_iou(
    pred_id: int,
    pred: tuple[float, float],
    gt: tuple[float, float],
    fps: float,
    annotation: dict,
    masks: Masks,
    fallbacks: bool = True,
) -> float:
    """``calculate_spatial_iou_for_item``: vIoU over int(t * fps) frames, GT box ``bbox[f - st_frame]``.

    ``fallbacks=False`` leaves frames without the ID empty (the project's strict score).
    """
    gs, ge = int(gt[0] * fps), int(gt[1] * fps)
    ps, pe = int(pred[0] * fps), int(pred[1] * fps)
    lo, hi = max(gs, ps), min(ge, pe)
    union = max(ge, pe) - min(gs, ps) + 1
    if lo >= hi:
        return 0.0
    frames_with_id = [f for f in range(lo, hi + 1) if f in masks and pred_id in masks[f]]
    state: dict = {"current": None, "last": None}
    total = 0.0
    for frame in range(lo, hi + 1):
        if frame not in masks:
            continue  # no mask file: past the end of the video
        if fallbacks:
            box = predicted_box(masks, frame, pred_id, state, frames_with_id)
        else:
            box = masks[frame].get(pred_id)
        k = frame - annotation["st_frame"]
        gt_box = None
        if 0 <= k < len(annotation["bbox"]):
            x, y, w, h = annotation["bbox"][k]
            gt_box = [x, y, x + w, y + h]
        total += box_iou(box, gt_box)
    return 0.0 if union == 0 else total / union


def evaluate_answer(
    output: str, gt_id: int, gt: tuple[float, float], fps: float, annotation: dict, masks: Masks
) -> tuple[float, float]:
    """(tIoU, vIoU) of one answer as ``process_work_items`` adds them to its means."""
    pred_id, start, end = parse(output)
    if start is None or end is None or pred_id is None:
        return 0.0, 0.0
    tiou = temporal_iou(gt, start, end)
    return tiou, spatial_iou(pred_id, (start, end), gt, fps, annotation, masks)


# ----------------------------------------------------------------------------------------------- labels


def box_iou_plus_one(a: Box, b: Box) -> float:
    """``compute_iou`` of trainjson.py: widths x2 - x1 + 1."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / float(union) if union > 0 else 0.0


def vote(annotation: dict, masks: Masks) -> int | None:
    """``compute_best_marker_id``: GT box k against the masks of frame st_frame + k, best positive
    IoU per frame (first in order on ties), the most common winner (first seen on ties)."""
    winners = []
    for k, (x, y, w, h) in enumerate(annotation["bbox"]):
        frame = annotation["st_frame"] + k
        if frame not in masks:
            continue
        best, best_iou = None, 0.0
        for instance, box in masks[frame].items():
            iou = box_iou_plus_one([x, y, x + w, y + h], box)
            if iou > best_iou:
                best, best_iou = instance, iou
        if best is not None:
            winners.append(best)
    return Counter(winners).most_common(1)[0][0] if winners else None
