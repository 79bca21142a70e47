"""The SAM2 backend's backward pass: each new instance traced back from its keyframe (the paper).

For every keyframe that started instances, a fresh session propagates them in reverse, window by
window (the window is a memory bound: a live instance is carried into the earlier window with its
last mask, on the frame where it was last seen). An instance stops, and the reason is counted:

- ``reached_start``: it reached frame 0;
- ``vanished``: no mask for ``reach`` positions in a row;
- ``ran_into_track``: its mask overlaps another instance's (mask IoU >= ``id_iou``) on a frame;
- ``merged``: ... and that instance had ended before the keyframe: the two are one instance seen
  again, merged (a recorded repair).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stvg.prompting.backends.base import FrameMasks, observe
from stvg.prompting.backends.sam2.forward import Pass, Tools
from stvg.prompting.identity import Observation, Tracks
from stvg.prompting.maskdb import rle_iou

STOPS = ("reached_start", "vanished", "ran_into_track", "merged")


@dataclass
class _Trace:
    """One instance being traced backward: where and how it was last seen."""

    last: int
    mask: np.ndarray


def track_backward(tools: Tools, state: Pass) -> None:
    """Trace every keyframe's new instances backward; counts frames filled and why each stopped."""
    state.counts["backward_frames"] = 0
    state.counts["backward_stops"] = dict.fromkeys(STOPS, 0)
    t0 = time.perf_counter()
    for k in sorted(state.new_at):
        _trace_from(tools, k, state.new_at[k], state)
    state.clock.add("backward_s", t0)


def _trace_from(tools: Tools, keyframe: int, seeds: dict[int, np.ndarray], state: Pass) -> None:
    """Trace the instances new at ``keyframe`` back, one window at a time, until all have stopped."""
    plan, session = tools.plan, tools.session
    others = [t for t in state.tracks if t not in seeds]
    traces = {oid: _Trace(keyframe, mask) for oid, mask in seeds.items()}
    while traces:
        b = max(t.last for t in traces.values())
        a = max(0, min(t.last for t in traces.values()) - plan.window + 1)
        if b == 0:
            _stop(state, traces, list(traces), "reached_start")
            break
        session.start(tools.source.read(a, b + 1), first_frame=a)
        for oid, trace in sorted(traces.items()):
            session.add_mask(trace.last, oid, trace.mask)
        for f, out in session.propagate(b, b - a + 1, reverse=True):
            _step(tools, state, traces, others, keyframe, f, out)
            if not traces:
                break
        session.reset()
        if a == 0:
            _stop(state, traces, list(traces), "reached_start")


def _step(
    tools: Tools,
    state: Pass,
    traces: dict[int, _Trace],
    others: Sequence[int],
    keyframe: int,
    f: int,
    out: FrameMasks,
) -> None:
    """One reverse frame: extend each trace that reaches ``f``, or stop it."""
    for oid in [o for o, t in traces.items() if f < t.last]:
        trace = traces[oid]
        if oid not in out:
            if trace.last - f >= tools.plan.reach:
                _stop(state, traces, [oid], "vanished")
            continue
        mask, score = out[oid]
        obs = observe(mask, score)
        if obs is None:
            continue
        hit = _overlapping(state.tracks, others, f, obs, tools.plan.id_iou)
        if hit is not None:
            merged = _merge_into_ended(state, hit, oid, keyframe, f)
            _stop(state, traces, [oid], "merged" if merged else "ran_into_track")
            continue
        state.tracks.setdefault(oid, {}).setdefault(f, obs)
        state.counts["backward_frames"] += 1
        trace.last, trace.mask = f, mask


def _stop(state: Pass, traces: dict[int, _Trace], ids: list[int], why: str) -> None:
    for oid in ids:
        del traces[oid]
        state.counts["backward_stops"][why] += 1


def _overlapping(tracks: Tracks, ids: Sequence[int], f: int, obs: Observation, iou: float) -> int | None:
    for t in ids:
        other = tracks.get(t, {}).get(f)
        if other is not None and rle_iou(obs.payload, other.payload) >= iou:
            return t
    return None


def _merge_into_ended(state: Pass, hit: int, oid: int, keyframe: int, f: int) -> bool:
    """Merge ``oid`` into ``hit`` when ``hit`` had ended before ``keyframe`` (one instance seen again)."""
    tracks = state.tracks
    if max(tracks[hit]) >= keyframe or oid not in tracks:
        return False
    tracks[hit].update({k: v for k, v in tracks.pop(oid).items() if k not in tracks[hit]})
    state.events.append(
        {
            "kind": "backward_merge",
            "track": hit,
            "merged": oid,
            "frame_position": f,
            "reason": f"instance {oid} traced backward onto instance {hit}, which had ended",
        }
    )
    return True
