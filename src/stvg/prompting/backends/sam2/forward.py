"""The SAM2 backend's forward pass: windowed propagation with re-detection every ``every`` frames.

Frames are streamed in windows of ``window`` new positions; a window is a **memory bound**, not a
tracking boundary: every live instance (seen within the last ``reach`` positions) is carried into
the next session with its last mask on the frame where it was last seen (the decoded frames since
then are kept, never re-read), so an instance hidden on the boundary frame keeps its ID. Every
``every`` positions (paper: 15) the detector runs; its boxes become masks through the SAM2 image
predictor (the official code's step), and ``identity.match_keyframe`` applies the duplicate rule to
those masks against the tracked ones (IoU >= ``id_iou``; containment optional). New instances are
prompted with ``add_new_mask`` and remembered for the backward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stvg.config import DetectParams
from stvg.prompting.backends.base import Detector, FrameMasks, Stopwatch, record
from stvg.prompting.backends.sam2.session import Segmenter, Session
from stvg.prompting.composites import prompts_of
from stvg.prompting.identity import Tracks, box_mask, match_keyframe
from stvg.prompting.video import FrameSource

COUNTERS = (
    "windows",  # SAM2 sessions opened by the forward pass
    "carried",  # live instances carried into a later session (summed over windows)
    "keyframes",
    "detections",
    "composites",  # group boxes dropped (prompt.detect.drop_composites)
    "matched",  # keyframe detections that are instances already tracked
    "new",  # ... that start a new instance
    "duplicates",  # ... dropped as duplicates of another new detection
    "dropped_contained",  # ... dropped by the containment rule
    "replaced",  # tracked instances replaced by the containment rule
    "empty_masks",  # image-predictor masks that came out empty (the filled box was used)
)


@dataclass(frozen=True)
class Plan:
    """The backend's knobs in tracked positions."""

    every: int  # re-detect every this many positions
    window: int  # new positions per SAM2 session
    id_iou: float
    containment: bool
    containment_ratio: float
    backward: bool

    @property
    def reach(self) -> int:
        """Positions an instance may go unseen and still be carried into the next session."""
        return max(1, min(self.every, self.window - 1))


@dataclass
class Pass:
    """One video's tracking state, shared by the forward and backward passes."""

    tracks: Tracks = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    clock: Stopwatch = field(
        default_factory=lambda: Stopwatch("decode_s", "detect_s", "segment_s", "propagate_s")
    )
    new_at: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)  # keyframe -> {new id: mask}
    last_seen: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)  # id -> (position, mask)
    suppressed: set[int] = field(default_factory=set)  # ids the containment rule deleted
    next_id: int = 1

    def seen(self, position: int, masks: FrameMasks) -> None:
        """Record instances' masks on ``position`` (tracks and last sightings)."""
        record(self.tracks, position, masks)
        for oid, (mask, _) in masks.items():
            self.last_seen[oid] = (position, mask)


@dataclass(frozen=True)
class Tools:
    """What the passes work with for one video."""

    source: FrameSource
    detector: Detector
    session: Session
    segmenter: Segmenter
    detect: DetectParams
    plan: Plan


def track_forward(tools: Tools) -> Pass:
    """The forward pass over the whole video (see the module docstring)."""
    source, session, plan = tools.source, tools.session, tools.plan
    state = Pass()
    n = len(source.frame_indices)
    tail: dict[int, np.ndarray] = {}  # decoded frames a carried instance may be prompted on
    s = 0
    while s < n:
        e = min(n, s + plan.window)
        t0 = time.perf_counter()
        new = source.read(s, e)
        state.clock.add("decode_s", t0)
        carry = {
            oid: seen
            for oid, seen in state.last_seen.items()
            if oid not in state.suppressed and seen[0] >= s - plan.reach
        }
        first = min((pos for pos, _ in carry.values()), default=s)
        frames = [tail[p] for p in range(first, s)] + new
        session.start(frames, first_frame=first)
        for oid, (pos, mask) in sorted(carry.items()):
            session.add_mask(pos, oid, mask)
        state.counts["windows"] += 1
        state.counts["carried"] += len(carry)
        _window(tools, frames, (first, s, e), state)
        session.reset()
        tail = {p: f for p, f in zip(range(first, e), frames, strict=True) if p >= e - plan.reach}
        s = e
    return state


def _window(tools: Tools, frames: list[np.ndarray], bounds: tuple[int, int, int], state: Pass) -> None:
    """Propagate one session from ``first``, recording positions ``s..e-1``, re-detecting at keyframes."""
    first, s, e = bounds
    session, plan = tools.session, tools.plan
    pos = first
    current: FrameMasks = {}
    while pos < e:
        start = max(pos, s)
        keyframe = ((start + plan.every - 1) // plan.every) * plan.every
        stop = keyframe if keyframe < e else e - 1
        t0 = time.perf_counter()
        for f, masks in session.propagate(pos, stop - pos + 1):
            current = {k: v for k, v in masks.items() if k not in state.suppressed}
            if f >= s:
                state.seen(f, current)
        state.clock.add("propagate_s", t0)
        pos = stop + 1
        if stop == keyframe:
            _keyframe(tools, frames[stop - first], stop, current, state)


def _keyframe(tools: Tools, frame: np.ndarray, k: int, current: FrameMasks, state: Pass) -> None:
    """Re-detect on position ``k``: boxes -> image-predictor masks -> duplicate rule -> new instances."""
    plan = tools.plan
    t0 = time.perf_counter()
    found = tools.detector.detect_with_masks([frame], [tools.source.frame_indices[k]])[0]
    t0 = state.clock.add("detect_s", t0)
    state.counts["keyframes"] += 1
    state.counts["detections"] += len(found)
    found, n_composite = prompts_of(found, tools.detect)
    state.counts["composites"] += n_composite
    boxes = [d.box for d, _ in found]
    masks = tools.segmenter.masks(frame, boxes)
    state.clock.add("segment_s", t0)
    h, w = frame.shape[:2]
    state.counts["empty_masks"] += sum(not m.any() for m in masks)
    masks = [m if m.any() else box_mask(b, h, w) for m, b in zip(masks, boxes, strict=True)]
    decision = match_keyframe(
        masks,
        {i: m for i, (m, _) in current.items()},
        id_iou=plan.id_iou,
        containment=plan.containment,
        containment_ratio=plan.containment_ratio,
        scores=[d.score for d, _ in found],
    )
    for key, n in (("matched", len(decision.matched)), ("duplicates", len(decision.duplicates))):
        state.counts[key] += n
    state.counts["dropped_contained"] += len(decision.dropped_contained)
    replaced_by = {i: old for old, i in decision.replaced.items()}
    for i in decision.new:
        oid = state.next_id
        state.next_id += 1
        tools.session.add_mask(k, oid, masks[i])
        current[oid] = (masks[i], float(found[i][0].score))
        state.seen(k, {oid: current[oid]})
        state.counts["new"] += 1
        if plan.backward and k > 0:
            state.new_at.setdefault(k, {})[oid] = masks[i]
        if i in replaced_by:
            _replace(state, current, replaced_by[i], oid, k)


def _replace(state: Pass, current: FrameMasks, old: int, new: int, k: int) -> None:
    """The containment rule's replacement: ``old`` is deleted from keyframe ``k`` on (recorded)."""
    state.suppressed.add(old)
    current.pop(old, None)
    state.tracks.get(old, {}).pop(k, None)
    state.counts["replaced"] += 1
    state.events.append(
        {
            "kind": "containment_replace",
            "frame_position": k,
            "removed": old,
            "new": new,
            "reason": "new mask contains / is contained by a tracked one and is larger",
        }
    )
