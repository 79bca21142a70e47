"""Tubes on tracked frames: reading an instance's box on native frames that were not tracked.

Shared by label voting, the prompting ceiling and evaluation (so none of them imports another for it):
when ``prompt.track_fps`` is below the native rate, a native frame takes the box of the nearest
tracked frame (the earlier one on a tie), or none when the instance is absent there. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stvg.geometry import last_pixel_box
from stvg.records import Box


def nearest_tracked(frames: Sequence[int], tracked: Sequence[int]) -> list[int | None]:
    """For each frame, the nearest tracked frame (the earlier one on a tie); None when nothing is tracked."""
    t = np.asarray(sorted(tracked), dtype=np.int64)
    if t.size == 0:
        return [None] * len(frames)
    f = np.asarray(frames, dtype=np.int64)
    right = np.clip(np.searchsorted(t, f, side="left"), 0, t.size - 1)
    left = np.clip(right - 1, 0, t.size - 1)
    pick = np.where(np.abs(f - t[left]) <= np.abs(t[right] - f), t[left], t[right])
    return [int(x) for x in pick]


def fill_untracked(tube: Mapping[int, Box], frames: Sequence[int], tracked: Sequence[int]) -> dict[int, Box]:
    """Boxes of ``tube`` on ``frames``, reading each untracked frame from its nearest tracked frame."""
    out: dict[int, Box] = {}
    for f, t in zip(frames, nearest_tracked(frames, tracked)):
        if t is not None and t in tube:
            out[int(f)] = tube[t]
    return out


def tracked_grid(summary: Mapping[str, Any], tracks: Mapping[int, Any]) -> list[int]:
    """Native frames the prompt stage tracked: all of them when it tracked at the native rate (its
    summary's ``tracked_frames`` equals ``n_frames``), else the frames holding a box.

    A tracked frame without any box is then a frame where no instance is (the official code reads an
    empty mask file there), not one to borrow a neighbour's boxes for.
    """
    n = int(summary.get("n_frames") or 0)
    tracked = int(summary.get("tracked_frames") or 0)
    return list(range(n)) if n > 0 and tracked >= n else sorted(tracks)


def protocol_boxes(boxes: Mapping[int, Box], protocol: Any) -> dict[int, Box]:
    """Mask boxes (x2 one past the last pixel) as ``protocol`` (an ``evaluation.metrics.TubeProtocol``)
    reads them: its ``mask_box`` says whether they end on the last pixel."""
    if protocol.mask_box == "last_pixel":
        return {f: last_pixel_box(b) for f, b in boxes.items()}
    return dict(boxes)
