"""HC-STVG challenge scoring (``tzhhhh123/HC-STVG`` ``eval_hcvg.py``), restated.

Both the GT file and the submission are ``{video: {"st_frame", "ed_frame", "bbox": {frame: xyxy}}}``
with string frame keys. Per video: the frames compared are the GT's bbox keys that the submission's
bbox also has (wherever the submission's st/ed lie); the union length comes from the st/ed fields
only; a video absent from the submission scores 0.
"""

from __future__ import annotations


def box_iou(a: list[float], b: list[float]) -> float:
    """xyxy IoU without +1; 0 when the boxes do not overlap."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    if left >= right or top >= bottom:
        return 0.0
    inter = (right - left) * (bottom - top)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def video_scores(gt: dict, pred: dict | None) -> tuple[float, float]:
    """(tIoU, vIoU) of one video."""
    if pred is None:
        return 0.0, 0.0
    shared = [frame for frame in gt["bbox"] if frame in pred["bbox"]]
    total = 0.0  # added frame by frame, as the official loop does: built-in sum() compensates its
    for frame in shared:  # rounding from Python 3.12 on, which moves a vIoU sitting on a threshold
        total += box_iou(pred["bbox"][frame], gt["bbox"][frame])
    length = max(gt["ed_frame"], pred["ed_frame"]) - min(gt["st_frame"], pred["st_frame"]) + 1
    return len(shared) / length, total / length


def evaluate(gt: dict, pred: dict) -> dict[str, float]:
    """Means over the GT videos; vIoU@R counts vIoU strictly above R."""
    tious, vious = [], []
    for video, entry in gt.items():
        tiou, viou = video_scores(entry, pred.get(video))
        tious.append(tiou)
        vious.append(viou)
    n = len(gt)
    return {
        "m_tIoU": sum(tious) / n,
        "m_vIoU": sum(vious) / n,
        "vIoU@0.3": sum(v > 0.3 for v in vious) / n,
        "vIoU@0.5": sum(v > 0.5 for v in vious) / n,
    }


def gt_file(annotation: dict) -> dict:
    """The challenge GT dict of an HC-STVG annotation: frames in its own 1-based numbering from
    ``st_frame``, boxes x2 = x + w."""
    out = {}
    for video, entry in annotation.items():
        st = entry["st_frame"]
        boxes = {str(st + k): [x, y, x + w, y + h] for k, (x, y, w, h) in enumerate(entry["bbox"])}
        out[video] = {"st_frame": st, "ed_frame": st + len(entry["bbox"]) - 1, "bbox": boxes}
    return out
