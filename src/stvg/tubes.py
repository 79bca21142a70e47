"""Tubes on tracked frames: reading an instance's box on native frames that were not tracked.

Shared by label voting, the prompting ceiling and evaluation (so none of them imports another for it):
when ``prompt.track_fps`` is below the native rate, a native frame takes the box of the nearest
tracked frame (the earlier one on a tie), or none when the instance is absent there. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

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
