"""Group boxes held by a track: the stand-in's cut of a track out of the frames where its box spans two objects.

Where two flat-coloured shapes overlap, a per-frame detector often returns one box around both and
the tracker hands it to one of them. Those observations belong to neither object; they are dropped
and the track split around them, so repair's merging can re-link the pieces by motion and colour.
A propagation tracker (SAM2) follows each object's own mask and has no such boxes: this is the
stand-in's, applied to its raw tracks before repair.
"""

from __future__ import annotations

from typing import Any

from stvg.geometry import box_area
from stvg.prompting.identity import Observation, Tracks
from stvg.prompting.identity.motion import box_containment

BLOB_WINDOW = 5  # unswollen observations whose largest box is the track's recent size
BLOB_MIN_INSIDE = 0.85  # another track's box lying this much inside the swollen one is held by it


def split_blobs(
    tracks: Tracks, ratio: float, window: int = BLOB_WINDOW, min_inside: float = BLOB_MIN_INSIDE
) -> tuple[Tracks, list[dict[str, Any]], dict[int, int]]:
    """Cut a track out of the frames where its box swells into a blob holding another track's box.

    A blob frame: the box jumps to ``ratio`` x the track's recent size (the largest box area of its
    last ``window`` unswollen observations) while another track's smaller box lies inside it (>=
    ``min_inside`` of its area). An object coming closer grows by a few percent a frame, never by
    ``ratio`` at once, and is not cut. Returns tracks, log and new id -> original raw id.
    """
    out: Tracks = {}
    origin: dict[int, int] = {}
    log: list[dict[str, Any]] = []
    next_id = max(tracks, default=0) + 1
    for tid in sorted(tracks):
        blob = blob_frames(tracks, tid, ratio, window, min_inside)
        if not blob:
            out[tid], origin[tid] = tracks[tid], tid
            continue
        log.append(_blob_log(tid, blob, ratio))
        for k, piece in enumerate(_pieces(tracks[tid], blob)):
            nid = tid if k == 0 else next_id
            next_id += k > 0
            out[nid], origin[nid] = piece, tid
    return out, log, origin


def blob_frames(tracks: Tracks, tid: int, ratio: float, window: int, min_inside: float) -> set[int]:
    """Frames on which track ``tid``'s box swelled around another track's box."""
    frames = tracks[tid]
    recent: list[float] = []
    blob: set[int] = set()
    for t in sorted(frames):
        area = float(box_area(frames[t].box))
        if len(recent) >= 2 and area >= ratio * max(recent[-window:]):
            holds = any(
                t in other
                and box_containment(frames[t].box, other[t].box) >= min_inside
                and float(box_area(other[t].box)) < area
                for oid, other in tracks.items()
                if oid != tid
            )
            if holds:
                blob.add(t)
                continue
        recent.append(area)
    return blob


def _pieces(frames: dict[int, Observation], blob: set[int]) -> list[dict[int, Observation]]:
    """The track's runs of frames between its blob frames."""
    pieces: list[dict[int, Observation]] = [{}]
    for t in sorted(frames):
        if t in blob:
            if pieces[-1]:
                pieces.append({})
            continue
        pieces[-1][t] = frames[t]
    return [q for q in pieces if q]


def _blob_log(tid: int, blob: set[int], ratio: float) -> dict[str, Any]:
    ordered = sorted(blob)
    runs = [[ordered[0], ordered[0]]]
    for t in ordered[1:]:
        if t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return {
        "kind": "split_blob",
        "track": tid,
        "frames": runs,
        "reason": f"its box swelled to >= {ratio:g} x its recent size around another track's box "
        f"on {len(blob)} frame(s): dropped there, the track split around them",
    }
