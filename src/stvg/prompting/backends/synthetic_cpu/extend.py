"""Extend tracks past their first and last detections: the stand-in's forward/backward propagation.

The paper propagates every new instance backward to its first appearance (and SAM2 carries each one
forward until it vanishes). A per-frame detector misses an instance at both ends of its life: while it
enters (a sliver at the frame edge), while it comes out from behind another object, and while it
leaves or goes behind one again. This step follows each repaired track from its first detection
backward, and from its last one forward, one frame at a time:

- the box expected there comes from the track's own motion at that end (``identity.motion_box``
  fitted on its detected frames, so the growing or shrinking boxes found here do not bend it),
  clipped to the frame and grown by ``search_margin`` of its side;
- inside it, the pixels whose colour the track's appearance histogram explains (histogram
  back-projection, as CamShift) form candidate components; those overlapping the expected box by
  at least ``min_px`` pixels (an occluder can cut the visible part in pieces) are the instance's
  visible part, if together they are not larger than the track's usual size, look like the track
  (``appearance.appearance_distance`` <= ``gate``) and are
  not another track's object on that frame (no other track there with box IoU >= 0.5 whose usual
  colours are the same: a track of other colours whose box covers the part holds a box around two
  shapes there, or the shape behind this one);
- where the only component there is larger than the object (it lies on, or under, a shape of its own
  flat colour: no outline to find), the object's own mask moved where its motion leads is taken, as
  long as ``hidden_fraction`` of it lies on its colour (``hidden_part``; SAM2's propagation would
  keep a mask there too);
- it stops at the first frame where neither exists, at the video's ends, at a frame the track
  already has, or after ``max_frames``.

The same search walks into each short gap *inside* a track (a partial occlusion the detector missed),
from both sides, expecting the object where the observations just before (or after) it lead, found
ones included, or where interpolating the gap's two ends puts it (the union of the two boxes): an
object that turns while covered is followed where linear interpolation alone would cut the corner.
Inside a gap the walk stops at a part smaller than ``min_gap_fraction`` of the track's usual area
(a sliver is likelier a piece of the object than all of it); the frames it leaves are filled by
``fill.fill_occluded``.

Found observations carry score 0 and ``filled=True`` (inferred, not detected) and every extension is
recorded. Colour is a weak cue on cluttered real video; this is for the CPU backend, whose embedded
default's objects are uniformly coloured (SAM2's propagation needs no such help).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stvg.geometry import box_iou, mask_to_box
from stvg.prompting.backends.synthetic_cpu.colour import (
    appearance_distance,
    back_project,
    colour_feature,
    end_appearance,
    medoid_feature,
)
from stvg.prompting.identity import Observation, Tracks, motion_box

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
    min_gap_fraction: float = 0.3  # in a gap, a part under this x the usual area stops the walk
    hidden_fraction: float = 0.9  # share of its shape on its colour for an object hidden in a blob; 0 = off
    max_size: float = 1.2  # a part larger than this x the track's usual area is not (only) the object
    held_iou: float = 0.5  # another track's box this alike, of the same usual colours, holds the object
    min_on_frame: float = 0.9  # a hidden shape moved where less than this share of it stays in frame is lost


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
    grow = (1.0 + p.search_margin) * side
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
    parts = np.flatnonzero(overlap >= p.min_px)  # an occluder can cut the visible part in pieces
    if parts.size == 0 or stats[parts, cv2.CC_STAT_AREA].sum() > p.max_size * max_area:
        return None
    mask = np.zeros((h, w), dtype=bool)
    mask[region[1] : region[3], region[0] : region[2]] = np.isin(comp, parts)
    box = mask_to_box(mask)
    feature = colour_feature(image_rgb, mask)
    if (
        box is None
        or appearance_distance(feature, appearance) > p.gate
        or _held_by_another(box, feature, others, p)
    ):
        return None
    return mask


def _held_by_another(
    box: Sequence[float],
    feature: np.ndarray | None,
    others: Sequence[tuple[Sequence[float], np.ndarray | None]],
    p: ExtendParams,
) -> bool:
    """Another track's object is there: a box of it with IoU >= ``held_iou`` and the same usual colours."""
    return any(
        float(box_iou(box, other_box)) >= p.held_iou
        and appearance_distance(feature, other_feature) <= p.gate / 2
        for other_box, other_feature in others
    )


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by (dx, dy) pixels, what leaves the frame dropped."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def hidden_part(
    image_rgb: np.ndarray,
    expected: Sequence[float],
    template: np.ndarray,
    appearance: np.ndarray,
    max_area: float,
    others: Sequence[tuple[Sequence[float], np.ndarray | None]],
    p: ExtendParams,
) -> np.ndarray | None:
    """The object's own shape (``template``, its nearest mask) moved to ``expected``, when it lies on
    pixels of its colour (>= ``hidden_fraction`` of it) inside a region of that colour larger than the
    object: on or under a shape of its own flat colour, it has no outline to detect, but the pixels
    agree with it being where its motion leads (as SAM2's propagation keeps a mask there). None when
    the shape would leave that colour, the frame, or land on another track's same-coloured object."""
    import cv2

    box = mask_to_box(template)
    if box is None or p.hidden_fraction <= 0:
        return None
    dx = round((expected[0] + expected[2] - box[0] - box[2]) / 2)
    dy = round((expected[1] + expected[3] - box[1] - box[3]) / 2)
    moved = _shifted(template, dx, dy)
    n = int(moved.sum())
    if n < max(p.min_px, p.min_on_frame * template.sum()):
        return None  # the shape would leave the frame
    moved_box = mask_to_box(moved)
    assert moved_box is not None
    h, w = moved.shape
    side = max(moved_box[2] - moved_box[0], moved_box[3] - moved_box[1])
    region = _clip((moved_box[0] - side, moved_box[1] - side, moved_box[2] + side, moved_box[3] + side), w, h)
    assert region is not None
    crop = (slice(region[1], region[3]), slice(region[0], region[2]))
    fg = back_project(image_rgb[crop], appearance) >= p.min_prob
    inside = moved[crop]
    if int((fg & inside).sum()) < p.hidden_fraction * n:
        return None
    _, comp = cv2.connectedComponents(fg.astype(np.uint8), connectivity=4)
    holding = np.unique(comp[fg & inside])
    if np.isin(comp, holding[holding > 0]).sum() <= p.max_size * max_area:
        return None  # the colour there is the object alone: find_part's business, not a hidden one
    return None if _held_by_another(moved_box, appearance, others, p) else moved


@dataclass
class _Walks:
    """What every walk of one ``extend_track_ends`` call reads and adds to."""

    out: Tracks  # the tracks as extended so far
    seen_at: dict[
        int, dict[int, tuple[Sequence[float], np.ndarray | None]]
    ]  # frame -> id -> (box, usual colour)
    frame_at: Frames
    n_positions: int
    encode: Callable[[np.ndarray], Any]
    decode: Callable[[Any], np.ndarray] | None
    p: ExtendParams


@dataclass(frozen=True)
class _Span:
    """One walk: from ``start`` by ``step`` up to (not onto) ``stop``; inside a gap, its two ends."""

    start: int
    step: int
    stop: int
    between: tuple[Observation, Observation, int, int] | None = None


def extend_track_ends(
    tracks: Tracks,
    frame_at: Frames,
    n_positions: int,
    encode: Callable[[np.ndarray], Any],
    p: ExtendParams = ExtendParams(),
    decode: Callable[[Any], np.ndarray] | None = None,
) -> tuple[Tracks, list[dict[str, Any]]]:
    """Tracks with their ends extended (see the module docstring), and the log of extensions.

    With ``decode`` (observation payload -> bool mask), an object hidden on or under a shape of its
    own colour is followed too (``hidden_part``); without it only visible parts are.
    """
    walks = _Walks(
        {tid: dict(f) for tid, f in tracks.items()},
        _usual_colours(tracks),
        frame_at,
        n_positions,
        encode,
        decode,
        p,
    )
    log: list[dict[str, Any]] = []
    for tid in sorted(tracks):
        detected = {f: o for f, o in tracks[tid].items() if not o.filled}
        if len(detected) >= 2:
            log += _extend_ends(walks, tid, detected)
            log += _walk_gaps(walks, tid, detected)
    return {tid: dict(sorted(f.items())) for tid, f in walks.out.items()}, log


def _usual_colours(tracks: Tracks) -> dict[int, dict[int, tuple[Sequence[float], np.ndarray | None]]]:
    """Frame -> track -> (box, the track's usual colours).

    A track's usual colours, not one frame's: on a frame where it holds a box around two shapes,
    that frame's colours are a mix that would pass for either shape's.
    """
    seen_at: dict[int, dict[int, tuple[Sequence[float], np.ndarray | None]]] = {}
    for tid, frames in tracks.items():
        usual = medoid_feature([o.feature for o in frames.values() if not o.filled])
        for f, o in frames.items():
            seen_at.setdefault(f, {})[tid] = (o.box, usual)
    return seen_at


def _extend_ends(walks: _Walks, tid: int, detected: dict[int, Observation]) -> list[dict[str, Any]]:
    """Walk back from the track's first detection and on from its last one."""
    log = []
    for backward in (True, False):
        appearance = end_appearance(detected, first=backward, window=max(walks.p.window, 8))
        if appearance is None:
            continue
        end = min(detected) if backward else max(detected)
        step = -1 if backward else 1
        found, n_hidden = _follow(walks, tid, detected, _Span(end + step, step, -2), appearance, detected)
        if found:
            where = "before its first" if backward else "after its last"
            hidden = f" ({n_hidden} of them hidden in a region of its colour)" if n_hidden else ""
            log.append(
                {
                    "kind": "extend",
                    "track": tid,
                    "direction": "backward" if backward else "forward",
                    "frames": found,
                    "hidden_frames": n_hidden,
                    "reason": f"its colour found along its motion {found} frame(s) {where} detection{hidden}",
                }
            )
    return log


def _walk_gaps(walks: _Walks, tid: int, detected: dict[int, Observation]) -> list[dict[str, Any]]:
    """Walk into each short gap between detections, from both sides."""
    log = []
    keys = sorted(detected)
    for a, b in itertools.pairwise(keys):
        if not 1 < b - a <= walks.p.max_frames + 1:
            continue
        found = n_hidden = 0
        for span, side in ((_Span(a + 1, 1, b), False), (_Span(b - 1, -1, a), True)):
            near = {f: o for f, o in detected.items() if (f >= b if side else f <= a)}
            appearance = end_appearance(near, first=side, window=max(walks.p.window, 8))
            if appearance is None:
                continue
            motion = {f: o for f, o in walks.out[tid].items() if (f >= b if side else f <= a)}
            between = _Span(span.start, span.step, span.stop, (detected[a], detected[b], a, b))
            got, hid = _follow(walks, tid, detected, between, appearance, motion)
            found, n_hidden = found + got, n_hidden + hid
        if found:
            hidden = f" ({n_hidden} of them hidden in a region of its colour)" if n_hidden else ""
            log.append(
                {
                    "kind": "fill_colour",
                    "track": tid,
                    "frames": found,
                    "hidden_frames": n_hidden,
                    "gap": [a + 1, b - 1],
                    "reason": f"its colour found along its motion on {found} of the {b - a - 1} "
                    f"frame(s) it was not detected{hidden}",
                }
            )
    return log


def _follow(
    walks: _Walks,
    tid: int,
    detected: dict[int, Observation],
    span: _Span,
    appearance: np.ndarray,
    motion: dict[int, Observation],
) -> tuple[int, int]:
    """Walk ``span`` expecting the object where ``motion``'s observations lead; each one found joins
    ``motion`` unless that is ``detected``. Returns the frames found and how many were hidden."""
    p, out = walks.p, walks.out
    max_area = float(np.median([o.area for o in detected.values()]))
    label = next(iter(detected.values())).label
    near = detected[min(detected, key=lambda f: abs(f - span.start))]
    template = walks.decode(near.payload) if walks.decode is not None and near.payload is not None else None
    found = n_hidden = 0
    t = span.start
    while 0 <= t < walks.n_positions and t != span.stop and found < p.max_frames and t not in out[tid]:
        expected = _expected(motion, t, span, p.window)
        others = [seen for o, seen in walks.seen_at.get(t, {}).items() if o != tid]
        image = walks.frame_at(t)
        mask = find_part(image, expected, appearance, max_area, others, p)
        if mask is None and template is not None:
            mask = hidden_part(image, expected, template, appearance, max_area, others, p)
            n_hidden += mask is not None
        if mask is None or (span.between is not None and mask.sum() < p.min_gap_fraction * max_area):
            break  # inside a gap, a sliver is likelier a piece of the object than all of it
        box = mask_to_box(mask)
        assert box is not None
        obs = Observation(
            box=box, area=int(mask.sum()), score=0.0, payload=walks.encode(mask), label=label, filled=True
        )
        out[tid][t] = obs
        if motion is not detected:
            motion[t] = obs
        walks.seen_at.setdefault(t, {})[tid] = (box, appearance)
        found += 1
        t += span.step
    return found, n_hidden


def _expected(motion: dict[int, Observation], t: int, span: _Span, window: int) -> Sequence[float]:
    """Where the object should be at ``t``: along its motion; inside a gap, also where interpolating
    the gap's two ends puts it (the union of both boxes)."""
    expected = motion_box(motion, t, backward=span.step < 0, window=window)
    if span.between is None:
        return expected
    oa, ob, a, b = span.between
    wt = (t - a) / (b - a)
    lin = (1 - wt) * np.asarray(oa.box) + wt * np.asarray(ob.box)
    return tuple(
        np.concatenate([np.minimum(expected[:2], lin[:2]), np.maximum(expected[2:], lin[2:])]).tolist()
    )
