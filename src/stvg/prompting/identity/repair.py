"""Whole-video ID repair on a backend's raw tracks: size filter, switch splits, merges, short tracks, 1..K.

The official code has no repair step; the paper mentions ID-switch correction without details, so
the rules here are ours and every change is recorded in the video's summary. Backend-specific
appearance enters only through the ``Similarity`` the backend hands in (``merge.Similarity``).
Frames are tracked-frame positions (consecutive integers); boxes are xyxy pixels. Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from stvg.geometry import box_iou
from stvg.prompting.identity.merge import MergeRules, Similarity, merge_fragments
from stvg.prompting.identity.motion import predict_before
from stvg.prompting.identity.observation import Box, Tracks


@dataclass(frozen=True)
class RepairRules:
    """The repair knobs in tracked frames (``config.RepairParams`` converted at the track rate)."""

    merge: MergeRules
    size_filter_ratio: float = 0.0  # 0 = off; official code: 1/3 of the frame's largest mask
    min_track_frames: int = 2
    fix_switches: bool = True
    merge_fragments: bool = True


@dataclass(frozen=True)
class RepairResult:
    """Repaired tracks with IDs 1..K, the repair log and the raw -> final id map."""

    tracks: Tracks
    repairs: list[dict[str, Any]]
    id_map: dict[int, int]  # raw id -> final id (fragments merged into one final id share it)


def repair_tracks(
    tracks: Tracks,
    rules: RepairRules,
    similarity: Similarity | None = None,
    origin: Mapping[int, int] | None = None,
) -> RepairResult:
    """Size-filter, split switches, merge fragments, drop short tracks, renumber; log every change.

    ``origin`` maps the given ids to the tracker's own (when the backend already split tracks).
    """
    work: Tracks = {t: dict(f) for t, f in tracks.items() if f}
    origin = {t: (origin or {}).get(t, t) for t in tracks}
    work, repairs = filter_small(work, rules.size_filter_ratio)
    if rules.fix_switches:
        work, log, split_origin = split_switches(work, rules.merge.min_iou)
        origin = {t: origin[split_origin[t]] for t in work}
        repairs.extend(log)
    absorbed: dict[int, int] = {}
    if rules.merge_fragments:
        work, log, absorbed = merge_fragments(work, rules.merge, similarity)
        for r in log:  # a stray fragment came out of another track: map it to that track's raw id
            if r["kind"] == "stray_fragment":
                origin[r["new_track"]] = origin.get(r["track"], r["track"])
        repairs.extend(log)
    work, log = drop_short(work, rules.min_track_frames)
    repairs.extend(log)
    final, mapping = renumber(work)
    return RepairResult(tracks=final, repairs=repairs, id_map=_id_map(mapping, absorbed, origin))


def _id_map(mapping: dict[int, int], absorbed: dict[int, int], origin: dict[int, int]) -> dict[int, int]:
    """Raw id -> final id: where its own first piece went; pieces cut from it only if that one is gone."""
    final_of = dict(mapping)
    final_of.update({cur: mapping[head] for cur, head in absorbed.items() if head in mapping})
    id_map: dict[int, int] = {}
    for cur in sorted(final_of, key=lambda c: (c != origin.get(c, c), c)):
        id_map.setdefault(origin.get(cur, cur), final_of[cur])
    return id_map


def filter_small(tracks: Tracks, ratio: float) -> tuple[Tracks, list[dict[str, Any]]]:
    """Drop observations smaller than ``ratio`` x the largest mask on the same frame (official 1/3 rule)."""
    if ratio <= 0:
        return tracks, []
    largest: dict[int, int] = {}
    for frames in tracks.values():
        for f, o in frames.items():
            largest[f] = max(largest.get(f, 0), o.area)
    out: Tracks = {}
    dropped = 0
    for tid, frames in tracks.items():
        kept = {f: o for f, o in frames.items() if o.area >= ratio * largest[f]}
        dropped += len(frames) - len(kept)
        if kept:
            out[tid] = kept
    if not dropped:
        return out, []
    reason = f"masks smaller than {ratio:g} x the frame's largest"
    return out, [{"kind": "size_filter", "dropped_observations": dropped, "reason": reason}]


def split_switches(tracks: Tracks, min_iou: float) -> tuple[Tracks, list[dict[str, Any]], dict[int, int]]:
    """Cut a track where its box jumps onto another track's predicted path (an ID switch).

    A cut needs all three: the box at ``t`` does not continue the track's own motion (IoU with its
    own prediction < ``min_iou``); it continues another track present just before (IoU >= ``min_iou``);
    and that other track is absent at ``t`` or continues *this* track's path there (a takeover or a
    swap). Without the third condition a shape being covered (its visible box shrinks towards the
    occluder) was cut on every occlusion. Returns the new tracks, the log and new id -> original id.
    """
    out: Tracks = {}
    origin: dict[int, int] = {}
    log: list[dict[str, Any]] = []
    next_id = max(tracks, default=0) + 1
    keys = {tid: sorted(f) for tid, f in tracks.items()}
    for tid in sorted(tracks):
        cuts = _switch_cuts(tracks, keys, tid, min_iou, log)
        bounds = [min(tracks[tid]), *cuts, max(tracks[tid]) + 1]
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            nid = tid if k == 0 else next_id
            next_id += k > 0
            piece = {f: o for f, o in tracks[tid].items() if a <= f < b}
            if piece:
                out[nid], origin[nid] = piece, tid
    return out, log, origin


def _switch_cuts(
    tracks: Tracks, keys: dict[int, list[int]], tid: int, min_iou: float, log: list[dict[str, Any]]
) -> list[int]:
    """Frames where track ``tid`` switches to another track's object (logged)."""
    frames = tracks[tid]
    cuts: list[int] = []
    for t in keys[tid][1:]:
        own = predict_before(frames, keys[tid], t, since=cuts[-1] if cuts else min(frames))
        if own is None or float(box_iou(frames[t].box, own)) >= min_iou:
            continue
        other = _switched_to(tracks, keys, tid, t, own, min_iou)
        if other is not None:
            cuts.append(t)
            log.append(
                {
                    "kind": "split",
                    "track": tid,
                    "frame": t,
                    "continues": other,
                    "reason": f"box at frame {t} leaves track {tid}'s path and continues track {other}'s",
                }
            )
    return cuts


def _switched_to(
    tracks: Tracks, keys: dict[int, list[int]], tid: int, t: int, own: Box, min_iou: float
) -> int | None:
    """The track whose path ``tid``'s box at ``t`` continues, when that track is gone or on ``tid``'s path."""
    box = tracks[tid][t].box
    for oid, other in tracks.items():
        if oid == tid or (t - 1) not in other:
            continue
        pred = predict_before(other, keys[oid], t)
        if pred is None or float(box_iou(box, pred)) < min_iou:
            continue
        # a switch also explains the other track at t: gone (this one took its object) or on this
        # track's path (a swap); where it just goes on along its own path, this box is being covered
        if t not in other or float(box_iou(other[t].box, own)) >= min_iou:
            return oid
    return None


def drop_short(tracks: Tracks, min_frames: int) -> tuple[Tracks, list[dict[str, Any]]]:
    """Tracks of at least ``min_frames`` frames; each dropped one logged."""
    short = sorted(t for t, f in tracks.items() if len(f) < min_frames)
    log = [
        {
            "kind": "drop_short",
            "track": t,
            "frames": len(tracks[t]),
            "reason": f"track shorter than {min_frames} frames",
        }
        for t in short
    ]
    return {t: f for t, f in tracks.items() if t not in short}, log


def renumber(tracks: Tracks) -> tuple[Tracks, dict[int, int]]:
    """IDs 1..K in order of first appearance (ties: leftmost first box, then raw id)."""
    order = sorted(tracks, key=lambda t: (min(tracks[t]), tracks[t][min(tracks[t])].box[0], t))
    mapping = {old: new for new, old in enumerate(order, start=1)}
    return {mapping[t]: tracks[t] for t in order}, mapping


def fill_gaps(tracks: Tracks, max_gap: int) -> dict[int, dict[int, Box]]:
    """Boxes for the frames a track misses between two of its observations, up to ``max_gap`` in a row.

    Linear interpolation of the flanking boxes: an instance keeps its ID through a short occlusion or
    detector miss, as a propagation tracker (SAM2) would. Returns track id -> frame -> box; what mask
    a filled frame gets (e.g. minus the shapes in front) is the caller's business.
    """
    out: dict[int, dict[int, Box]] = {}
    for tid, frames in tracks.items():
        keys = sorted(frames)
        for a, b in itertools.pairwise(keys):
            if b - a <= 1 or b - a - 1 > max_gap:
                continue
            ba = np.asarray(frames[a].box, dtype=np.float64)
            bb = np.asarray(frames[b].box, dtype=np.float64)
            for f in range(a + 1, b):
                w = (f - a) / (b - a)
                out.setdefault(tid, {})[f] = tuple(((1 - w) * ba + w * bb).tolist())  # type: ignore[assignment]
    return out
