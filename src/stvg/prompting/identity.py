"""Instance identity, backend-independent and pure: keyframe matching and whole-video ID repair.

Two jobs, both on plain numpy/records so every tracker backend shares them and tests need no model:

- ``match_keyframe``: at a re-detection keyframe, decide which detections are instances already being
  tracked (mask IoU >= ``id_iou``, as the official code) and which are new. The official code's
  containment rule (a mask covering >= ``containment_ratio`` of another: the larger one wins and the
  old ID is deleted) is available but off by default, because it silently switches IDs; when on, each
  replacement is returned so it lands in the video's repair log.
- ``repair_tracks``: on the finished raw tracks of a video, split tracks at ID switches, merge
  fragments of one instance, apply the optional size filter, drop short tracks and renumber the IDs
  1..K in order of first appearance. The official code has no repair step at all; the paper
  mentions ID-switch correction without details, so the rules here are ours and are all recorded.

Frames here are tracked-frame positions (consecutive integers); boxes are xyxy pixels.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stvg.geometry import box_area, box_iou, pairwise_containment, pairwise_mask_iou
from stvg.prompting.appearance import appearance_distance, medoid_feature

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Observation:
    """One instance on one tracked frame; ``payload`` is opaque here (the engine keeps the mask RLE)."""

    box: Box  # xyxy, pixels
    area: int  # mask pixels
    score: float
    payload: Any = None
    label: int = -1  # detector class id (-1: unknown); fragments of different classes are never merged
    filled: bool = False  # True: not observed, filled in by ``fill_gaps`` across a short gap
    feature: np.ndarray | None = field(default=None, compare=False, repr=False)  # appearance (unit norm)


Tracks = dict[int, dict[int, Observation]]  # raw id -> frame position -> observation


# ----------------------------------------------------------------------------------------------- keyframes


@dataclass(frozen=True)
class KeyframeDecision:
    """What to do with one keyframe's detections."""

    new: tuple[int, ...]  # detection indices that start a new instance
    matched: dict[int, int]  # detection index -> existing instance id
    duplicates: tuple[int, ...]  # detection indices dropped as duplicates of another new detection
    replaced: dict[int, int] = field(default_factory=dict)  # existing id -> detection index (containment)
    dropped_contained: tuple[int, ...] = ()  # detections dropped because contained in a larger existing mask


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """Filled box as a bool (H, W) mask: the stand-in mask of a box-only detection."""
    m = np.zeros((height, width), dtype=bool)
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x2 > x1 and y2 > y1:
        m[y1:y2, x1:x2] = True
    return m


def match_keyframe(
    detection_masks: Sequence[np.ndarray],
    existing: Mapping[int, np.ndarray],
    *,
    id_iou: float,
    containment: bool = False,
    containment_ratio: float = 0.6,
    scores: Sequence[float] | None = None,
) -> KeyframeDecision:
    """Split a keyframe's detections into matched, new, duplicate (and, optionally, containment) cases.

    Detections are taken in descending score order; a detection is compared with the existing masks
    and with the detections already accepted as new, so two detections of one object give one ID.
    """
    n = len(detection_masks)
    if n == 0:
        return KeyframeDecision(new=(), matched={}, duplicates=())
    order = list(range(n)) if scores is None else sorted(range(n), key=lambda i: -float(scores[i]))
    det = np.stack([np.asarray(m, dtype=bool) for m in detection_masks])
    ex_ids = list(existing)
    ex = np.stack([np.asarray(existing[i], dtype=bool) for i in ex_ids]) if ex_ids else None
    iou_ex = pairwise_mask_iou(det, ex) if ex is not None else np.zeros((n, 0))
    iou_det = pairwise_mask_iou(det, det)
    areas = det.reshape(n, -1).sum(1)
    if containment and ex is not None:
        cov_det = pairwise_containment(det, ex)  # |d∩e| / |d|
        cov_ex = pairwise_containment(ex, det).T  # |d∩e| / |e|
    new: list[int] = []
    matched: dict[int, int] = {}
    duplicates: list[int] = []
    replaced: dict[int, int] = {}
    dropped: list[int] = []
    for i in order:
        if iou_ex.shape[1] and iou_ex[i].max() >= id_iou:
            matched[i] = ex_ids[int(iou_ex[i].argmax())]
            continue
        if any(iou_det[i, j] >= id_iou for j in new):
            duplicates.append(i)
            continue
        if containment and ex is not None:
            cover = np.maximum(cov_det[i], cov_ex[i])
            cover[[k for k, e in enumerate(ex_ids) if e in replaced]] = 0.0
            if cover.size and cover.max() >= containment_ratio:
                k = int(cover.argmax())
                ex_area = int(ex[k].sum())
                if areas[i] > ex_area:  # the larger mask wins (official code)
                    replaced[ex_ids[k]] = i
                    new.append(i)
                else:
                    dropped.append(i)
                continue
        new.append(i)
    return KeyframeDecision(
        new=tuple(new),
        matched=matched,
        duplicates=tuple(duplicates),
        replaced=replaced,
        dropped_contained=tuple(dropped),
    )


# ----------------------------------------------------------------------------------------------- repair


@dataclass(frozen=True)
class RepairParams:
    """The repair knobs (a view of ``PromptParams`` in tracked frames)."""

    max_gap_frames: int = 10  # fragments at most this many frames apart may be merged
    min_iou: float = 0.3  # extrapolated-box IoU needed to merge / to call a jump an ID switch
    max_center_dist: float = 0.0  # or: predicted-centre distance <= this x box side merges (0 = off)
    motion_window: int = 1  # observations (beyond the last) fitting a fragment's velocity and size
    size_filter_ratio: float = 0.0  # 0 = off; official code: 1/3 of the frame's largest mask
    min_track_frames: int = 2
    fix_switches: bool = True
    blob_ratio: float = 0.0  # a box swelling to this x its recent size around another track's is cut; 0 = off
    merge: bool = True
    appearance_gate: float = 0.0  # fragments whose end/start colours differ more are never merged; 0 = off
    max_overlap_frames: int = 0  # a fragment may start this many frames before the previous one ends


@dataclass(frozen=True)
class RepairResult:
    """Repaired tracks with IDs 1..K, the repair log and the raw -> final id map."""

    tracks: Tracks
    repairs: list[dict[str, Any]]
    id_map: dict[int, int]  # raw id -> final id (fragments merged into one final id share it)


def extrapolate_box(frames: Mapping[int, Observation], target: int, *, backward: bool = False) -> Box:
    """Constant-velocity guess of a track's box at ``target`` from its last (or first) two frames."""
    keys = sorted(frames)
    if backward:
        a, b = (keys[1], keys[0]) if len(keys) > 1 else (keys[0], keys[0])
    else:
        a, b = (keys[-2], keys[-1]) if len(keys) > 1 else (keys[-1], keys[-1])
    bb = np.asarray(frames[b].box, dtype=np.float64)
    if a == b:
        return tuple(bb.tolist())  # type: ignore[return-value]
    velocity = (bb - np.asarray(frames[a].box, dtype=np.float64)) / (b - a)
    return tuple((bb + velocity * (target - b)).tolist())  # type: ignore[return-value]


def motion_box(
    frames: Mapping[int, Observation], target: int, *, backward: bool = False, window: int = 4
) -> Box:
    """Box expected at ``target`` from the track's last (or first) ``window + 1`` observations.

    Sturdier than ``extrapolate_box`` at the ends of fragments, where a shape is usually entering,
    leaving or being covered: the centre's velocity is a least-squares fit over the window (one
    shrinking box does not swing it) and the size is the window's median width and height.
    """
    keys = sorted(frames)
    keys = keys[: window + 1] if backward else keys[-(window + 1) :]
    t = np.asarray(keys, dtype=np.float64)
    boxes = np.asarray([frames[k].box for k in keys], dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.median(boxes[:, 2:] - boxes[:, :2], axis=0)
    centre = centres.mean(0)
    if len(keys) > 1:
        tc = t - t.mean()
        velocity = (tc[:, None] * (centres - centre)).sum(0) / (tc**2).sum()
        centre = centre + velocity * (target - t.mean())
    return tuple(np.concatenate([centre - size / 2, centre + size / 2]).tolist())  # type: ignore[return-value]


def center_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between two boxes' centres in units of the first box's side (geometric mean of w, h)."""
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    side = max(1e-6, float(np.sqrt(max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]))))
    return float(np.linalg.norm(ca - cb)) / side


def track_label(frames: Mapping[int, Observation]) -> int:
    """The track's most frequent known class id (-1 when none is known)."""
    labels = [o.label for o in frames.values() if o.label >= 0]
    return max(set(labels), key=labels.count) if labels else -1


def _predict(
    frames: Mapping[int, Observation], keys: Sequence[int], t: int, since: int = -(10**12)
) -> Box | None:
    """Box expected at ``t`` from the track's last two observations in ``[since, t)`` (sorted ``keys``)."""
    i = bisect.bisect_left(keys, t)
    prev = [k for k in keys[max(0, i - 2) : i] if k >= since]
    if not prev:
        return None
    return extrapolate_box({k: frames[k] for k in prev}, t)


def split_switches(tracks: Tracks, min_iou: float) -> tuple[Tracks, list[dict[str, Any]], dict[int, int]]:
    """Cut a track where its box jumps onto another track's predicted path (an ID switch).

    A cut needs all three: the box at ``t`` does not continue the track's own motion (IoU with its
    own prediction < ``min_iou``); it continues another track present just before (IoU >= ``min_iou``);
    and that other track is absent at ``t`` or continues *this* track's path there (a takeover or a
    swap). Without the third condition a shape being covered (its visible box shrinks towards the
    occluder) was cut on every occlusion.
    Returns the new tracks, the log and new id -> original raw id.
    """
    out: Tracks = {}
    origin: dict[int, int] = {}
    log: list[dict[str, Any]] = []
    next_id = max(tracks, default=0) + 1
    keys = {tid: sorted(f) for tid, f in tracks.items()}
    for tid in sorted(tracks):
        frames = tracks[tid]
        cuts: list[int] = []
        for t in keys[tid][1:]:
            own = _predict(frames, keys[tid], t, since=cuts[-1] if cuts else min(frames))
            if own is None or float(box_iou(frames[t].box, own)) >= min_iou:
                continue
            for oid, other in tracks.items():
                if oid == tid or (t - 1) not in other:
                    continue
                pred = _predict(other, keys[oid], t)
                if pred is None or float(box_iou(frames[t].box, pred)) < min_iou:
                    continue
                # A switch also explains the other track at t: it is gone (this track took its object)
                # or it is on this track's path (the two swapped). Where the other one just goes on
                # along its own path, the jump is an occlusion shrinking this box, not a switch.
                if t not in other or float(box_iou(other[t].box, own)) >= min_iou:
                    cuts.append(t)
                    log.append(
                        {
                            "kind": "split",
                            "track": tid,
                            "frame": t,
                            "continues": oid,
                            "reason": f"box at frame {t} leaves track {tid}'s path and continues track {oid}'s",
                        }
                    )
                    break
        bounds = [min(frames), *cuts, max(frames) + 1]
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            nid = tid if k == 0 else next_id
            if k:
                next_id += 1
            piece = {f: o for f, o in frames.items() if a <= f < b}
            if piece:
                out[nid] = piece
                origin[nid] = tid
    return out, log, origin


def split_blobs(
    tracks: Tracks, ratio: float, window: int = 5, min_inside: float = 0.85
) -> tuple[Tracks, list[dict[str, Any]], dict[int, int]]:
    """Cut a track out of the frames where its box swells into a blob holding another track's box.

    Where two objects overlap, a detector often returns one box around both and the tracker hands it
    to one of them: that track's box jumps to ``ratio`` x its recent size (the largest box area of its
    last ``window`` unswollen observations) while another track's box lies inside it (>=
    ``min_inside`` of its area). Those observations belong to neither object; they are dropped and
    the track is split around them, so merging can re-link the pieces by motion and appearance
    (often to the track that carried on with the object meanwhile). An object coming closer grows
    by a few percent a frame, never by ``ratio`` at once, and is not cut. Returns tracks, log and new id -> original raw id.
    """
    out: Tracks = {}
    origin: dict[int, int] = {}
    log: list[dict[str, Any]] = []
    next_id = max(tracks, default=0) + 1
    for tid in sorted(tracks):
        frames = tracks[tid]
        recent: list[float] = []
        blob: set[int] = set()
        for t in sorted(frames):
            area = float(box_area(frames[t].box))
            if len(recent) >= 2 and area >= ratio * max(recent[-window:]):
                holds = any(
                    t in other
                    and _box_containment(frames[t].box, other[t].box) >= min_inside
                    and float(box_area(other[t].box)) < area
                    for oid, other in tracks.items()
                    if oid != tid
                )
                if holds:
                    blob.add(t)
                    continue
            recent.append(area)
        if not blob:
            out[tid], origin[tid] = frames, tid
            continue
        pieces: list[dict[int, Observation]] = [{}]
        for t in sorted(frames):
            if t in blob:
                if pieces[-1]:
                    pieces.append({})
                continue
            pieces[-1][t] = frames[t]
        pieces = [q for q in pieces if q]
        ordered = sorted(blob)
        runs = [[ordered[0], ordered[0]]]
        for t in ordered[1:]:
            if t == runs[-1][1] + 1:
                runs[-1][1] = t
            else:
                runs.append([t, t])
        log.append(
            {
                "kind": "split_blob",
                "track": tid,
                "frames": runs,
                "reason": f"its box swelled to >= {ratio:g} x its recent size around another track's box "
                f"on {len(blob)} frame(s): dropped there, the track split around them",
            }
        )
        for k, piece in enumerate(pieces):
            nid = tid if k == 0 else next_id
            next_id += k > 0
            out[nid], origin[nid] = piece, tid
    return out, log, origin


def end_appearance(frames: Mapping[int, Observation], *, first: bool, window: int) -> np.ndarray | None:
    """Typical appearance of a track's first (or last) ``window`` observed (not gap-filled) frames.

    The medoid, not the mean: the ends of a fragment are where its object goes behind, or comes out
    from behind, another one, and those frames' masks mix in the other object's colours.
    """
    keys = [k for k in sorted(frames) if not frames[k].filled and frames[k].feature is not None]
    keys = keys[:window] if first else keys[-window:]
    return medoid_feature([frames[k].feature for k in keys])


def _box_containment(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area: 1 when one box lies inside the other."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / small if small > 0 else 0.0


def merge_fragments(
    tracks: Tracks,
    max_gap: int,
    min_iou: float,
    *,
    max_center_dist: float = 0.0,
    window: int = 1,
    appearance_gate: float = 0.0,
    max_overlap: int = 0,
) -> tuple[Tracks, list[dict[str, Any]], dict[int, int]]:
    """Join a track that ends to one that starts soon after where the first one was heading.

    Candidate links (end of A -> start of B, 0 < gap <= ``max_gap`` + 1 frames, no known class
    conflict) are tested both ways: A's motion carried forward to B's first frame and B's carried
    backward to A's last. A link needs an extrapolated-box IoU >= ``min_iou`` or, when
    ``max_center_dist`` > 0, a predicted centre within that many box sides (boxes of shapes entering
    or leaving cover change size fast, so IoU alone misses them); A's last box itself counts as a
    prediction too (an object that stopped while hidden reappears where it vanished). When
    ``appearance_gate`` > 0,
    A's last and B's first frames must look alike (``appearance_distance`` <= the gate: a shape that
    went behind another is not the one that came out).

    With ``max_overlap`` > 0, B may also start up to that many frames *before* A ends: a tracker
    often opens the new track a frame or two before the old one dies (the old one lingers on a
    duplicate box, or has just jumped onto a neighbour). Such a link is tested with A's motion
    before B starts (and B's after A ends), and only when on every shared frame the two boxes are
    duplicates (IoU >= 0.5, or >= 85 % of the smaller inside the larger: a box spanning two shapes)
    or one of them has left its own track's path (IoU < ``min_iou`` with that track's motion from
    its unshared frames): two tracks that each follow their own object through the overlap are two
    objects. On a shared frame the merged track keeps B's box, or A's where B's left its path.
    Where the box left out is no duplicate of the kept one, nor of any other track's box, it shows a
    third object the tracker followed before taking over A's (or after leaving it): those boxes become
    a fragment of their own (logged ``stray_fragment``) that a second pass may merge with a later or
    earlier track, instead of being thrown away.

    Links are accepted greedily, best first; each fragment has at most one successor and one
    predecessor. ``window`` > 1 fits the motion over that many observations (``motion_box``) instead
    of the last two. Returns tracks, log, absorbed -> kept id.
    """
    out, log, absorbed, strays = _merge_pass(
        tracks, max_gap, min_iou, max_center_dist, window, appearance_gate, max_overlap, only=None
    )
    if not strays:
        return out, log, absorbed
    next_id = max([*tracks, *out], default=0) + 1
    fresh: set[int] = set()
    for (a, b), frames in sorted(strays.items()):
        out[next_id] = frames
        fresh.add(next_id)
        from_b = sum(tracks[b].get(f) is o for f, o in frames.items())
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
    out, log2, absorbed2, _ = _merge_pass(
        out, max_gap, min_iou, max_center_dist, window, appearance_gate, max_overlap, only=fresh
    )
    absorbed = {cur: absorbed2.get(head, head) for cur, head in absorbed.items()}
    absorbed.update(absorbed2)
    return out, [*log, *log2], absorbed


def _merge_pass(
    tracks: Tracks,
    max_gap: int,
    min_iou: float,
    max_center_dist: float,
    window: int,
    appearance_gate: float,
    max_overlap: int,
    *,
    only: set[int] | None,
) -> tuple[Tracks, list[dict[str, Any]], dict[int, int], dict[tuple[int, int], dict[int, Observation]]]:
    """One greedy linking pass of ``merge_fragments`` (links touching ``only`` when given).

    Returns tracks, log, absorbed -> kept id, and per accepted overlapping link the stray boxes.
    """
    spans = {tid: (min(f), max(f)) for tid, f in tracks.items() if f}
    labels = {tid: track_label(f) for tid, f in tracks.items() if f}
    look = max(window, 8)
    heads = {tid: end_appearance(f, first=True, window=look) for tid, f in tracks.items() if f}
    tails = {tid: end_appearance(f, first=False, window=look) for tid, f in tracks.items() if f}

    def predict(frames: Mapping[int, Observation], target: int, backward: bool) -> Box:
        if window > 1:
            return motion_box(frames, target, backward=backward, window=window)
        return extrapolate_box(frames, target, backward=backward)

    def resolve_overlap(
        a: int, b: int, b_start: int, a_end: int
    ) -> tuple[dict[int, Observation], dict[int, Observation]] | None:
        """The shared frames' observations to keep and the non-duplicate ones left out; None: two objects."""
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
            if float(box_iou(oa.box, ob.box)) >= 0.5 or _box_containment(oa.box, ob.box) >= 0.85:
                keep[t] = ob  # duplicates, or one box holds the other (a box spanning two shapes)
                continue
            a_off = float(box_iou(oa.box, predict(a_pre, t, False))) < min_iou
            b_off = float(box_iou(ob.box, predict(b_post, t, True))) < min_iou
            if not (a_off or b_off):
                return None
            keep[t], left[t] = (oa, ob) if b_off and not a_off else (ob, oa)
        return keep, left

    candidates: list[tuple[float, int, int, int]] = []
    shared: dict[tuple[int, int], dict[int, Observation]] = {}
    left_out: dict[tuple[int, int], dict[int, Observation]] = {}
    for a, (a_start, a_end) in spans.items():
        for b, (b_start, b_end) in spans.items():
            gap = b_start - a_end
            if a == b or gap < 1 - max_overlap or gap > max_gap + 1:
                continue
            if only is not None and a not in only and b not in only:
                continue
            if labels[a] >= 0 and labels[b] >= 0 and labels[a] != labels[b]:
                continue
            if appearance_gate > 0 and appearance_distance(tails[a], heads[b]) > appearance_gate:
                continue
            a_frames, b_frames = tracks[a], tracks[b]
            if gap < 1:  # B starts before A ends: judge each by what it did while alone
                if b_start <= a_start or b_end <= a_end:
                    continue
                resolved = resolve_overlap(a, b, b_start, a_end)
                if resolved is None:
                    continue
                shared[(a, b)], left_out[(a, b)] = resolved
                a_frames = {f: o for f, o in tracks[a].items() if f < b_start}
                b_frames = {f: o for f, o in tracks[b].items() if f > a_end}
            a_last, b_first = max(a_frames), min(b_frames)
            a_box, b_box = a_frames[a_last].box, b_frames[b_first].box
            fwd = predict(a_frames, b_first, False)
            bwd = predict(b_frames, a_last, True)
            # Three hypotheses: A went on along its motion, B came along its own, or the object
            # stopped while it was hidden (where A vanished is where B appears).
            iou = max(float(box_iou(fwd, b_box)), float(box_iou(bwd, a_box)), float(box_iou(a_box, b_box)))
            dist = min(
                center_distance(fwd, b_box), center_distance(bwd, a_box), center_distance(a_box, b_box)
            )
            if iou >= min_iou or (max_center_dist > 0 and dist <= max_center_dist):
                candidates.append((iou - dist, a, b, gap))
    candidates.sort(key=lambda c: (-c[0], abs(c[3] - 1), c[1], c[2]))
    succ: dict[int, int] = {}
    pred: dict[int, int] = {}
    log: list[dict[str, Any]] = []
    for score, a, b, gap in candidates:
        if a in succ or b in pred:
            continue
        succ[a], pred[b] = b, a
        reason = (
            f"track {b} starts {gap - 1} frame(s) after track {a} ends, where {a} was heading"
            if gap >= 1
            else f"track {b} starts {1 - gap} frame(s) before track {a} ends, where {a} was heading; "
            f"the shared frames hold duplicate boxes or one track off its path"
        )
        log.append(
            {
                "kind": "merge",
                "track": a,
                "merged": b,
                "gap_frames": gap - 1,
                "score": round(score, 4),
                "reason": reason,
            }
        )
    out: Tracks = {}
    absorbed: dict[int, int] = {}
    for head in sorted(t for t in spans if t not in pred):
        chain = {**tracks[head]}
        cur = head
        while cur in succ:
            prev, cur = cur, succ[cur]
            chain.update(tracks[cur])
            chain.update(shared.get((prev, cur), {}))
            absorbed[cur] = head
        out[head] = dict(sorted(chain.items()))

    def held_elsewhere(a: int, b: int, t: int, o: Observation) -> bool:
        """Another track than A and B holds a duplicate of the left-out box ``o``."""
        return any(
            oid not in (a, b) and t in other and float(box_iou(o.box, other[t].box)) >= 0.5
            for oid, other in tracks.items()
        )

    accepted: dict[tuple[int, int], dict[int, Observation]] = {}
    for (a, b), left in left_out.items():  # only a left-out box no other track holds is a stray
        if succ.get(a) == b:
            frames = {t: o for t, o in left.items() if not held_elsewhere(a, b, t, o)}
            if frames:
                accepted[(a, b)] = frames
    return out, log, absorbed, accepted


def filter_small(tracks: Tracks, ratio: float) -> tuple[Tracks, int]:
    """Drop observations smaller than ``ratio`` x the largest mask on the same frame (official 1/3 rule)."""
    if ratio <= 0:
        return tracks, 0
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
    return out, dropped


def renumber(tracks: Tracks) -> tuple[Tracks, dict[int, int]]:
    """IDs 1..K in order of first appearance (ties: leftmost first box, then raw id)."""
    order = sorted(tracks, key=lambda t: (min(tracks[t]), tracks[t][min(tracks[t])].box[0], t))
    mapping = {old: new for new, old in enumerate(order, start=1)}
    return {mapping[t]: tracks[t] for t in order}, mapping


def repair_tracks(tracks: Tracks, p: RepairParams) -> RepairResult:
    """Split switches, merge fragments, size-filter, drop short tracks, renumber; log every change."""
    repairs: list[dict[str, Any]] = []
    origin = {t: t for t in tracks}  # current id -> raw id
    work: Tracks = {t: dict(f) for t, f in tracks.items() if f}
    work, dropped_small = filter_small(work, p.size_filter_ratio)
    if dropped_small:
        repairs.append(
            {
                "kind": "size_filter",
                "dropped_observations": dropped_small,
                "reason": f"masks smaller than {p.size_filter_ratio:g} x the frame's largest",
            }
        )
    if p.blob_ratio > 0:
        work, log, blob_origin = split_blobs(work, p.blob_ratio)
        origin = {t: origin[blob_origin[t]] for t in work}
        repairs.extend(log)
    if p.fix_switches:
        work, log, split_origin = split_switches(work, p.min_iou)
        origin = {t: origin[split_origin[t]] for t in work}
        repairs.extend(log)
    absorbed: dict[int, int] = {}
    if p.merge:
        work, log, absorbed = merge_fragments(
            work,
            p.max_gap_frames,
            p.min_iou,
            max_center_dist=p.max_center_dist,
            window=p.motion_window,
            appearance_gate=p.appearance_gate,
            max_overlap=p.max_overlap_frames,
        )
        for r in log:  # a stray fragment came out of another track: map it to that track's raw id
            if r["kind"] == "stray_fragment":
                origin[r["new_track"]] = origin.get(r["track"], r["track"])
        repairs.extend(log)
    short = sorted(t for t, f in work.items() if len(f) < p.min_track_frames)
    for t in short:
        repairs.append(
            {
                "kind": "drop_short",
                "track": t,
                "frames": len(work[t]),
                "reason": f"track shorter than {p.min_track_frames} frames",
            }
        )
        del work[t]
    final, mapping = renumber(work)
    final_of = dict(mapping)
    final_of.update({cur: mapping[head] for cur, head in absorbed.items() if head in mapping})
    # a raw id maps to where its own first piece went; pieces cut from it only if that one is gone
    id_map: dict[int, int] = {}
    for cur in sorted(final_of, key=lambda c: (c != origin.get(c, c), c)):
        id_map.setdefault(origin.get(cur, cur), final_of[cur])
    return RepairResult(tracks=final, repairs=repairs, id_map=id_map)


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


def count_new_ids(tracks: Tracks) -> int:
    """Number of distinct instances that appear after the first tracked frame (the churn numerator)."""
    if not tracks:
        return 0
    first = min(min(f) for f in tracks.values())
    return sum(1 for f in tracks.values() if min(f) > first)


def with_payload(obs: Observation, payload: Any) -> Observation:
    """Copy of an observation carrying another payload."""
    return replace(obs, payload=payload)
