"""Gap filling after repair: a track keeps its ID through a short occlusion or detector miss.

Each gap of at most ``max_gap`` tracked frames inside a track (``identity.fill_gaps`` interpolates
its box) is filled with the *visible part* of the interpolated box: the box minus the masks observed
on that frame (the shapes in front, which the detector did see), so the filled box is the tight box
of that remainder, like the ground truth's visible-part boxes. A filled frame with nothing left
visible stays empty. Filled observations carry score 0 and ``filled=True``. Both backends.
"""

from __future__ import annotations

from typing import Any

from stvg.prompting.backends.base import observe
from stvg.prompting.identity import Tracks, box_mask, fill_gaps
from stvg.prompting.maskdb import decode_mask


def fill_occluded(tracks: Tracks, max_gap: int, height: int, width: int) -> tuple[Tracks, int]:
    """Tracks with their short gaps filled (see the module docstring) and the number of filled frames."""
    boxes = fill_gaps(tracks, max_gap)
    if not boxes:
        return tracks, 0
    observed: dict[int, list[Any]] = {}  # frame -> RLEs of observed masks
    for frames in tracks.values():
        for f, o in frames.items():
            if not o.filled:
                observed.setdefault(f, []).append(o.payload)
    out: Tracks = {tid: dict(frames) for tid, frames in tracks.items()}
    n = 0
    for tid, per_frame in boxes.items():
        label = out[tid][min(out[tid])].label
        for f, box in per_frame.items():
            visible = box_mask(box, height, width)
            for rle in observed.get(f, []):
                visible &= ~decode_mask(rle)
            obs = observe(visible, 0.0, label, filled=True)
            if obs is not None:
                out[tid][f] = obs
                n += 1
    return {tid: dict(sorted(frames.items())) for tid, frames in out.items()}, n
