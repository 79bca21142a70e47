"""Predicted box tubes from an answered instance ID: strict, and with the official inference-time ID repair.

STVG-R1's ``evaluate.py`` silently substitutes a box when the answered ID has no mask on a frame
(REFERENCE 3.4). We keep that behaviour available but *separate*: ``strict_tube`` uses only the
answered ID's own boxes (a missing frame scores IoU 0), and ``repaired_tube`` applies the three
fallbacks in the official order and says, per frame, which one produced the box, so a reported
score can never rest on a hidden heuristic:

1. ``previous``: continue from the previous frame's chosen box: the current-frame box that overlaps
   it best, or the largest box when none overlaps;
2. ``nearest``: without a previous box, the answered ID's box in the nearest frame that has it, then
   the current-frame box that overlaps that best;
3. ``largest``: otherwise the largest box in the frame.

``frames`` should be the frames the metric reads (``metrics.read_frames``): the official code runs
its fallbacks in its loop over the GT-predicted overlap, so the ``previous`` chain starts at the
first scored frame, and a fallback counted anywhere else would not change the score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from stvg.geometry import box_area, pairwise_box_iou
from stvg.records import Box

FALLBACKS = ("previous", "nearest", "largest")


@dataclass(frozen=True)
class PredictedTube:
    """Boxes per frame for one answer, and how each frame's box was obtained."""

    boxes: dict[int, Box]
    source: dict[int, str] = field(default_factory=dict)  # frame -> "id" | one of FALLBACKS

    @property
    def fallback_counts(self) -> dict[str, int]:
        """Frames filled by each fallback (``id`` frames excluded)."""
        counts = Counter(s for s in self.source.values() if s != "id")
        return {name: counts.get(name, 0) for name in FALLBACKS}


def strict_tube(
    boxes_by_frame: Mapping[int, Mapping[int, Box]], instance_id: int, frames: Iterable[int]
) -> PredictedTube:
    """The answered ID's own boxes on ``frames``; frames where it is absent get no box."""
    out: dict[int, Box] = {}
    for f in frames:
        box = boxes_by_frame.get(f, {}).get(instance_id)
        if box is not None:
            out[f] = box
    return PredictedTube(out, {f: "id" for f in out})


def repaired_tube(
    boxes_by_frame: Mapping[int, Mapping[int, Box]], instance_id: int, frames: Iterable[int]
) -> PredictedTube:
    """The answered ID's boxes on ``frames``, with the official fallbacks where it is absent.

    Only ``frames`` are filled and counted; the ``previous`` chain follows them in order, so a box
    on a frame outside them never seeds it (``nearest`` may still anchor on any frame of the ID).
    """
    frames = sorted(frames)
    id_frames = np.array(
        sorted(f for f, objs in boxes_by_frame.items() if instance_id in objs), dtype=np.int64
    )
    boxes: dict[int, Box] = {}
    source: dict[int, str] = {}
    previous: Box | None = None
    for f in frames:
        objs = boxes_by_frame.get(f, {})
        if instance_id in objs:
            boxes[f], source[f] = objs[instance_id], "id"
        elif objs:
            candidates = list(objs.values())
            if previous is not None:
                boxes[f], source[f] = _best_overlap_or_largest(candidates, previous), "previous"
            elif id_frames.size:
                nearest = int(id_frames[np.argmin(np.abs(id_frames - f))])
                anchor = boxes_by_frame[nearest][instance_id]
                boxes[f], source[f] = _best_overlap_or_largest(candidates, anchor), "nearest"
            else:
                boxes[f], source[f] = _largest(candidates), "largest"
        else:
            continue
        previous = boxes[f]
    return PredictedTube(boxes, source)


def _largest(candidates: list[Box]) -> Box:
    return candidates[int(np.argmax(box_area(np.asarray(candidates))))]


def _best_overlap_or_largest(candidates: list[Box], anchor: Box) -> Box:
    ious = pairwise_box_iou(np.asarray([anchor]), np.asarray(candidates))[0]
    if ious.max() <= 0:
        return _largest(candidates)
    return candidates[int(np.argmax(ious))]
