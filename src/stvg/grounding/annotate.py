"""The annotated video a user looks at: the raw frames with the answer drawn on them.

Every native frame of the input is written (same count, size and fps), with the answered instance's
box in green on the frames of its tube, the other instances' boxes and IDs faint, the query and the
answer as a caption, and a timeline along the bottom edge showing the answered span and the current
time. A failed grounding is drawn too (faint IDs, the reason in the caption), so the file always
exists when ``result.json`` does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from stvg.grounding.prompter import Box, read_video, write_mp4
from stvg.grounding.result import GroundingResult

TARGET = (40, 220, 60)  # RGB
FAINT = (230, 60, 60)  # the other instances: red like the IDs the policy sees, blended
FAINT_ALPHA = 0.5  # weight of the faint layer
BAR_PX = 6  # timeline height


def annotate_video(
    path: Path, result: GroundingResult, boxes_by_frame: Mapping[int, Mapping[int, Box]], out: Path
) -> int:
    """Write the annotated mp4 of ``result`` to ``out``; returns the frames written."""

    def frames() -> Iterator[np.ndarray]:
        for f, frame in enumerate(read_video(path)):
            yield draw_frame(frame, f, result, boxes_by_frame.get(f, {}))

    return write_mp4(out, frames(), result.fps, (result.width, result.height))


def draw_frame(frame: np.ndarray, f: int, result: GroundingResult, boxes: Mapping[int, Box]) -> np.ndarray:
    """One annotated RGB frame (a new array)."""
    import cv2

    img = np.ascontiguousarray(frame).copy()
    others = {i: b for i, b in boxes.items() if not (result.ok and i == result.target_id)}
    if others:
        layer = img.copy()
        for iid, box in others.items():
            _box(layer, box, FAINT, 1, str(iid))
        img = cv2.addWeighted(layer, FAINT_ALPHA, img, 1 - FAINT_ALPHA, 0)
    _caption(img, result)
    if result.ok and f in result.tube:  # after the caption: the answer is never hidden under text
        _box(img, result.tube[f], TARGET, 2, f"ID {result.target_id}")
    _timeline(img, f, result)
    return img


def _box(img: np.ndarray, box: Box, colour: tuple[int, int, int], thickness: int, label: str) -> None:
    import cv2

    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, thickness)
    cv2.putText(img, label, (x1 + 2, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 + 0.05 * thickness,
                colour, 1, cv2.LINE_AA)  # fmt: skip


def _caption(img: np.ndarray, result: GroundingResult) -> None:
    import cv2

    if result.ok:
        answer = f"ID {result.target_id}, {result.start_s:.2f}-{result.end_s:.2f} s"
    else:
        answer = "no grounding"
    for row, text in enumerate((result.query[:60], answer)):
        org = (4, 12 + 13 * row)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)


def _timeline(img: np.ndarray, f: int, result: GroundingResult) -> None:
    """Bottom bar: the whole video dark, the answered span green, the current time as a white tick."""
    h, w = img.shape[:2]
    duration = result.n_frames / result.fps if result.fps > 0 else 0.0
    if duration <= 0:
        return
    img[h - BAR_PX : h] = (img[h - BAR_PX : h] * 0.3).astype(np.uint8)
    if result.ok and result.start_s is not None and result.end_s is not None:
        a = int(np.clip(result.start_s / duration, 0, 1) * (w - 1))
        b = int(np.clip(result.end_s / duration, 0, 1) * (w - 1))
        img[h - BAR_PX : h, a : b + 1] = TARGET
    x = int(np.clip(f / result.fps / duration, 0, 1) * (w - 1))
    img[h - BAR_PX - 2 : h, max(0, x - 1) : x + 1] = 255
