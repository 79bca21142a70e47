"""Merging the fragments of one instance: candidate links, overlap resolution, greedy linking, strays.

A link joins fragment A (which ends) to fragment B (which starts soon after, where A was heading):

1. ``candidate_links``: A's end -> B's start, 0 < gap <= ``max_gap`` + 1 frames, no known class
   conflict, ends the backend's ``Similarity`` deems compatible; tested both ways (A's motion carried
   forward to B's first frame, B's carried backward to A's last, and A's last box itself: an object
   that stopped while hidden reappears where it vanished). It needs an extrapolated-box IoU >=
   ``min_iou`` or, when ``max_center_dist`` > 0, a predicted centre within that many box sides.
2. ``resolve_overlap``: with ``max_overlap`` > 0, B may start up to that many frames *before* A ends
   (a tracker often opens the new track a frame or two before the old one dies). Such a link holds
   only when on every shared frame the two boxes are duplicates (IoU >= ``DUPLICATE_IOU``, or one
   holds the other: a box spanning two shapes) or one of them has left its own track's path; two
   tracks that each follow their own object through the overlap are two objects.
3. ``accept_links``: best first, each fragment gets at most one successor and one predecessor.
4. Boxes left out of an accepted overlapping link that no other track holds show a third object the
   tracker followed meanwhile: ``stray_fragments`` keeps them as a fragment of their own, which a
   second pass may link (``merge_fragments``), instead of throwing them away.

The rules are ours (the official code has no repair); every link is logged. Pure: no colour, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stvg.geometry import box_iou
from stvg.prompting.identity.motion import box_containment, center_distance, predict_box
from stvg.prompting.identity.observation import Observation, Tracks, track_label

DUPLICATE_IOU = 0.5  # two boxes on one frame this alike are one object seen twice
HOLDS = 0.85  # ... as is a box holding this much of another (a box spanning two shapes)


class Similarity(Protocol):
    """A backend's judgement of whether two fragment ends can be one object (e.g. by colour)."""

    def signature(self, frames: Mapping[int, Observation], *, first: bool) -> Any:
        """What the track looks like at its first (or last) frames; None when unknown."""
        ...

    def compatible(self, tail: Any, head: Any) -> bool:
        """Whether a fragment ending with ``tail`` may continue as one starting with ``head``."""
        ...


@dataclass(frozen=True)
class MergeRules:
    """Fragment-merging knobs, in tracked frames."""

    max_gap: int  # fragments at most this many frames apart may be merged
    min_iou: float  # extrapolated-box IoU needed to merge
    max_center_dist: float = 0.0  # or: predicted-centre distance <= this x box side (0 = off)
    window: int = 1  # observations fitting a fragment's motion (1: its last two)
    max_overlap: int = 0  # a fragment may start this many frames before the previous one ends


@dataclass(frozen=True)
class Link:
    """A candidate continuation of fragment ``a`` by fragment ``b``."""

    a: int
    b: int
    gap: int  # b's first frame - a's last frame (<= 0: they overlap)
    score: float  # IoU - centre distance of the best hypothesis; higher is better
    shared: dict[int, Observation] = field(default_factory=dict)  # overlapping frames: the boxes kept
    left_out: dict[int, Observation] = field(default_factory=dict)  # ... and the non-duplicates left out


def merge_fragments(
    tracks: Tracks, rules: MergeRules, similarity: Similarity | None = None
) -> tuple[Tracks, list[dict[str, Any]], dict[int, int]]:
    """Link fragments (see the module docstring); returns tracks, log, absorbed -> kept id."""
    out, log, absorbed, strays = _merge_pass(tracks, rules, similarity, only=None)
    if not strays:
        return out, log, absorbed
    out, fresh, stray_log = stray_fragments(tracks, out, strays)
    out, log2, absorbed2, _ = _merge_pass(out, rules, similarity, only=fresh)
    absorbed = {cur: absorbed2.get(head, head) for cur, head in absorbed.items()}
    absorbed.update(absorbed2)
    return out, [*log, *stray_log, *log2], absorbed


def _merge_pass(
    tracks: Tracks, rules: MergeRules, similarity: Similarity | None, *, only: set[int] | None
) -> tuple[Tracks, list[dict[str, Any]], dict[int, int], dict[tuple[int, int], dict[int, Observation]]]:
    """One greedy linking pass (only links touching ``only`` when given)."""
    links = candidate_links(tracks, rules, similarity, only)
    accepted = accept_links(links)
    out, absorbed = chain(tracks, accepted)
    strays = {
        (k.a, k.b): left
        for k in accepted
        if (left := {t: o for t, o in k.left_out.items() if not _held_elsewhere(tracks, k.a, k.b, t, o)})
    }
    return out, [_link_log(k) for k in accepted], absorbed, strays


def candidate_links(
    tracks: Tracks, rules: MergeRules, similarity: Similarity | None, only: set[int] | None
) -> list[Link]:
    """Every plausible link between a fragment's end and another one's start."""
    spans = {tid: (min(f), max(f)) for tid, f in tracks.items() if f}
    labels = {tid: track_label(tracks[tid]) for tid in spans}
    ends = {}
    if similarity is not None:
        ends = {
            tid: (
                similarity.signature(tracks[tid], first=False),
                similarity.signature(tracks[tid], first=True),
            )
            for tid in spans
        }
    links: list[Link] = []
    for a, (a_start, a_end) in spans.items():
        for b, (b_start, b_end) in spans.items():
            gap = b_start - a_end
            if a == b or gap < 1 - rules.max_overlap or gap > rules.max_gap + 1:
                continue
            if only is not None and a not in only and b not in only:
                continue
            if labels[a] >= 0 and labels[b] >= 0 and labels[a] != labels[b]:
                continue
            if similarity is not None and not similarity.compatible(ends[a][0], ends[b][1]):
                continue
            if gap < 1 and (b_start <= a_start or b_end <= a_end):
                continue
            link = _test_link(tracks, a, b, gap, rules)
            if link is not None:
                links.append(link)
    return links


def _test_link(tracks: Tracks, a: int, b: int, gap: int, rules: MergeRules) -> Link | None:
    """The link A -> B when one of the three motion hypotheses supports it, else None."""
    a_frames, b_frames = tracks[a], tracks[b]
    shared: dict[int, Observation] = {}
    left: dict[int, Observation] = {}
    if gap < 1:  # B starts before A ends: judge each by what it did while alone
        resolved = resolve_overlap(tracks, a, b, rules)
        if resolved is None:
            return None
        shared, left = resolved
        b_start, a_end = min(b_frames), max(a_frames)
        a_frames = {f: o for f, o in a_frames.items() if f < b_start}
        b_frames = {f: o for f, o in b_frames.items() if f > a_end}
    a_last, b_first = max(a_frames), min(b_frames)
    a_box, b_box = a_frames[a_last].box, b_frames[b_first].box
    fwd = predict_box(a_frames, b_first, window=rules.window)
    bwd = predict_box(b_frames, a_last, backward=True, window=rules.window)
    # A went on along its motion, B came along its own, or the object stopped while it was hidden
    iou = max(float(box_iou(fwd, b_box)), float(box_iou(bwd, a_box)), float(box_iou(a_box, b_box)))
    dist = min(center_distance(fwd, b_box), center_distance(bwd, a_box), center_distance(a_box, b_box))
    if iou >= rules.min_iou or (rules.max_center_dist > 0 and dist <= rules.max_center_dist):
        return Link(a=a, b=b, gap=gap, score=iou - dist, shared=shared, left_out=left)
    return None


def resolve_overlap(
    tracks: Tracks, a: int, b: int, rules: MergeRules
) -> tuple[dict[int, Observation], dict[int, Observation]] | None:
    """The shared frames' observations to keep and the non-duplicate ones left out; None: two objects."""
    b_start, a_end = min(tracks[b]), max(tracks[a])
    a_pre = {f: o for f, o in tracks[a].items() if f < b_start}
    b_post = {f: o for f, o in tracks[b].items() if f > a_end}
    keep: dict[int, Observation] = {}
    left: dict[int, Observation] = {}
    for t in range(b_start, a_end + 1):
        oa, ob = tracks[a].get(t), tracks[b].get(t)
        if oa is None or ob is None:
            if oa is not None or ob is not None:
                keep[t] = oa if ob is None else ob  # type: ignore[assignment]
            continue
        if float(box_iou(oa.box, ob.box)) >= DUPLICATE_IOU or box_containment(oa.box, ob.box) >= HOLDS:
            keep[t] = ob  # duplicates, or one box holds the other (a box spanning two shapes)
            continue
        a_off = float(box_iou(oa.box, predict_box(a_pre, t, window=rules.window))) < rules.min_iou
        b_off = (
            float(box_iou(ob.box, predict_box(b_post, t, backward=True, window=rules.window))) < rules.min_iou
        )
        if not (a_off or b_off):
            return None
        keep[t], left[t] = (oa, ob) if b_off and not a_off else (ob, oa)
    return keep, left


def accept_links(links: list[Link]) -> list[Link]:
    """Links accepted greedily, best first: each fragment gets one successor and one predecessor."""
    ranked = sorted(links, key=lambda k: (-k.score, abs(k.gap - 1), k.a, k.b))
    succ: set[int] = set()
    pred: set[int] = set()
    accepted = []
    for k in ranked:
        if k.a in succ or k.b in pred:
            continue
        succ.add(k.a)
        pred.add(k.b)
        accepted.append(k)
    return accepted


def chain(tracks: Tracks, accepted: list[Link]) -> tuple[Tracks, dict[int, int]]:
    """Tracks with every accepted chain of links joined under its head's id; absorbed id -> head."""
    nxt = {k.a: k for k in accepted}
    heads = sorted(t for t, f in tracks.items() if f and t not in {k.b for k in accepted})
    out: Tracks = {}
    absorbed: dict[int, int] = {}
    for head in heads:
        frames = dict(tracks[head])
        cur = head
        while cur in nxt:
            link = nxt[cur]
            frames.update(tracks[link.b])
            frames.update(link.shared)
            absorbed[link.b] = head
            cur = link.b
        out[head] = dict(sorted(frames.items()))
    return out, absorbed


def stray_fragments(
    before: Tracks, merged: Tracks, strays: dict[tuple[int, int], dict[int, Observation]]
) -> tuple[Tracks, set[int], list[dict[str, Any]]]:
    """``merged`` plus each link's stray boxes as a new fragment; the new ids and their log."""
    out = dict(merged)
    next_id = max([*before, *merged], default=0) + 1
    fresh: set[int] = set()
    log: list[dict[str, Any]] = []
    for (a, b), frames in sorted(strays.items()):
        out[next_id] = frames
        fresh.add(next_id)
        from_b = sum(before[b].get(f) is o for f, o in frames.items())
        log.append(
            {
                "kind": "stray_fragment",
                "track": b if 2 * from_b >= len(frames) else a,  # the track most of the boxes came from
                "new_track": next_id,
                "frames": [min(frames), max(frames)],
                "reason": f"while tracks {a} and {b} overlapped, {len(frames)} box(es) left out of their "
                "merge followed another object that no track holds: kept as a fragment of their own",
            }
        )
        next_id += 1
    return out, fresh, log


def _held_elsewhere(tracks: Tracks, a: int, b: int, t: int, o: Observation) -> bool:
    """Another track than A and B holds a duplicate of the left-out box ``o``."""
    return any(
        oid not in (a, b) and t in other and float(box_iou(o.box, other[t].box)) >= DUPLICATE_IOU
        for oid, other in tracks.items()
    )


def _link_log(k: Link) -> dict[str, Any]:
    reason = (
        f"track {k.b} starts {k.gap - 1} frame(s) after track {k.a} ends, where {k.a} was heading"
        if k.gap >= 1
        else f"track {k.b} starts {1 - k.gap} frame(s) before track {k.a} ends, where {k.a} was heading; "
        "the shared frames hold duplicate boxes or one track off its path"
    )
    return {
        "kind": "merge",
        "track": k.a,
        "merged": k.b,
        "gap_frames": k.gap - 1,
        "score": round(k.score, 4),
        "reason": reason,
    }
