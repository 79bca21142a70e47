"""Extend tracks past their first and last detections: the CPU backend's forward/backward propagation.

The paper propagates every new instance backward to its first appearance (and SAM2 carries each one
forward until it vanishes). A per-frame detector misses an instance at both ends of its life: while it
enters (a sliver at the frame edge), while it comes out from behind another object, and while it
leaves or goes behind one again. This step follows each repaired track from its first detection
backward, and from its last one forward, one frame at a time:

- the box expected there comes from the track's own motion at that end (``identity.motion_box``
  fitted on its detected frames, so the growing or shrinking boxes found here do not bend it),
  clipped to the frame and grown by ``search_margin`` of its side;
- inside it, the pixels whose colour the track's appearance histogram explains (histogram
  back-projection, as CamShift) form candidate components; the one overlapping the expected box
  most is the instance's visible part, if it has at least ``min_px`` pixels, is not larger than the
  track's usual size, looks like the track (``appearance.appearance_distance`` <= ``gate``) and is
  not another track's object on that frame (no other track there with box IoU >= 0.7, or >= 0.5
  and the same colours: a box around it that also holds other colours is a detection that merged
  two shapes);
- it stops at the first frame where no such component exists, at the video's ends, at a frame the
  track already has, or after ``max_frames``.

Found observations carry score 0 and ``filled=True`` (inferred, not detected) and every extension is
recorded. Colour is a weak cue on cluttered real video; this is for the CPU backend, whose embedded
default's objects are uniformly coloured (SAM2's propagation needs no such help).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stvg.geometry import box_iou, mask_to_box
from stvg.prompting.appearance import appearance_distance, back_project, colour_feature
from stvg.prompting.identity import Observation, Tracks, end_appearance, motion_box

Frames = Callable[[int], np.ndarray]  # tracked position -> RGB frame


@dataclass(frozen=True)
class ExtendParams:
    """Track-end extension knobs (tracked frames)."""

    max_frames: int = 20  # frames an end may be extended by
    min_px: int = 16  # smallest visible part accepted, pixels
    gate: float = 0.5  # appearance distance above which a component is not the track's object
    search_margin: float = 0.25  # expected box grown by this fraction of its side
    min_prob: float = 0.5  # back-projection level (of the histogram's peak) counted as the track's colour
    window: int = 4  # detected observations fitting the motion at an end


def _clip(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int] | None:
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def find_part(
    image_rgb: np.ndarray,
    expected: Sequence[float],
    appearance: np.ndarray,
    max_area: float,
    others: Sequence[tuple[Sequence[float], np.ndarray | None]],
    p: ExtendParams,
) -> np.ndarray | None:
    """Bool (H, W) mask of the visible part of an object expected at ``expected`` (xyxy), or None."""
    import cv2

    h, w = image_rgb.shape[:2]
    side = max(expected[2] - expected[0], expected[3] - expected[1])
    grow = p.search_margin * side
    region = _clip((expected[0] - grow, expected[1] - grow, expected[2] + grow, expected[3] + grow), w, h)
    inside = _clip(expected, w, h)
    if region is None or inside is None:
        return None
    prob = back_project(image_rgb[region[1] : region[3], region[0] : region[2]], appearance)
    fg = (prob >= p.min_prob).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=4)
    if n <= 1:
        return None
    rx1, ry1 = region[0], region[1]
    ix1, iy1, ix2, iy2 = inside[0] - rx1, inside[1] - ry1, inside[2] - rx1, inside[3] - ry1
    overlap = np.bincount(comp[iy1:iy2, ix1:ix2].ravel(), minlength=n)
    overlap[0] = 0
    k = int(np.argmax(overlap))
    if overlap[k] < p.min_px or stats[k, cv2.CC_STAT_AREA] > 1.2 * max_area:
        return None
    mask = np.zeros((h, w), dtype=bool)
    mask[region[1] : region[3], region[0] : region[2]] = comp == k
    box = mask_to_box(mask)
    feature = colour_feature(image_rgb, mask)
    if box is None or appearance_distance(feature, appearance) > p.gate:
        return None
    for other_box, other_feature in others:
        iou = float(box_iou(box, other_box))
        if iou >= 0.7 or (iou >= 0.5 and appearance_distance(feature, other_feature) <= p.gate / 2):
            return None
    return mask


def extend_track_ends(
    tracks: Tracks,
    frame_at: Frames,
    n_positions: int,
    encode: Callable[[np.ndarray], Any],
    p: ExtendParams = ExtendParams(),
) -> tuple[Tracks, list[dict[str, Any]]]:
    """Tracks with their ends extended (see the module docstring), and the log of extensions."""
    out: Tracks = {tid: dict(frames) for tid, frames in tracks.items()}
    seen_at: dict[int, dict[int, tuple[Sequence[float], np.ndarray | None]]] = {}
    for tid, frames in tracks.items():
        for f, o in frames.items():
            seen_at.setdefault(f, {})[tid] = (o.box, o.feature)
    log: list[dict[str, Any]] = []
    for tid in sorted(tracks):
        detected = {f: o for f, o in tracks[tid].items() if not o.filled}
        if len(detected) < 2:
            continue
        max_area = float(np.median([o.area for o in detected.values()]))
        label = next(iter(detected.values())).label
        for backward in (True, False):
            appearance = end_appearance(detected, first=backward, window=max(p.window, 8))
            if appearance is None:
                continue
            end = min(detected) if backward else max(detected)
            step = -1 if backward else 1
            found = 0
            t = end + step
            while 0 <= t < n_positions and found < p.max_frames and t not in out[tid]:
                expected = motion_box(detected, t, backward=backward, window=p.window)
                others = [seen for o, seen in seen_at.get(t, {}).items() if o != tid]
                mask = find_part(frame_at(t), expected, appearance, max_area, others, p)
                if mask is None:
                    break
                box = mask_to_box(mask)
                assert box is not None
                out[tid][t] = Observation(
                    box=box, area=int(mask.sum()), score=0.0, payload=encode(mask), label=label, filled=True
                )
                seen_at.setdefault(t, {})[tid] = (box, appearance)
                found += 1
                t += step
            if found:
                log.append(
                    {
                        "kind": "extend",
                        "track": tid,
                        "direction": "backward" if backward else "forward",
                        "frames": found,
                        "reason": f"its colour found along its motion {found} frame(s) "
                        f"{'before its first' if backward else 'after its last'} detection",
                    }
                )
    return {tid: dict(sorted(f.items())) for tid, f in out.items()}, log
