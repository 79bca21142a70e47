"""Label reconstruction: which tracked instance is the GT tube, by per-frame best IoU and majority vote.

Like the official ``trainjson.py``: on every GT frame the instance whose tracked box (tight box of its
mask) has the highest IoU with the GT box casts a vote (only a positive IoU votes), and the label is
the most voted instance. By default the official rules hold (``label.*`` in params.yaml):

- ``frame_alignment: official`` — GT box k is compared with the mask of frame ``st_frame + k``,
  the 1-based ``st_frame`` read as a 0-based frame index: one frame *after* the box's own frame on
  HC-STVG-format data (here: the box of frame g votes on the masks of frame g + 1; a GT frame whose
  partner is past the video's end casts no vote). Other formats number frames from 0 and have no
  slip. ``annotation`` compares each GT box with its own frame.
- ``box_convention: official`` — IoU with the +1 pixel convention on GT boxes (x + w) and mask boxes
  ending on their last pixel; ``exclusive`` is the no-+1 IoU of the metrics (``geometry.box_iou``).
- Ties: within a frame, equal IoUs go to the lower instance ID (the official objects are in ID
  order). Between instances with equal vote counts, ``tie_break: official`` keeps the one that won
  a frame first (``Counter.most_common``); ``iou_sum`` prefers the higher summed IoU over all GT
  frames, then the lower ID.

Departures, all deliberate:

- GT frames that were not tracked (``prompt.track_fps`` below the native rate) are looked up on the
  nearest tracked frame (the earlier one on a tie); ``n_untracked`` counts them.
- A confidence is kept and thresholds (``LabelParams``) decide kept / flagged / dropped with reasons
  (the official script keeps the bare majority: set the thresholds to 0 to reproduce it).

Confidence fields (all fractions of ``n_gt_frames``, the GT frames with a box, unless noted):
``vote_share`` = winner's votes; ``margin`` = (winner's - runner-up's votes); ``presence`` = frames
where the winner is tracked; ``mean_iou`` / ``min_iou`` = the winner's IoU with GT over the frames
where it is present (absent frames are measured by ``presence`` instead of dragging the mean to 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stvg.config import LabelParams
from stvg.evaluation.metrics import HCSTVG_LIKE
from stvg.geometry import box_iou, box_iou_plus_one, last_pixel_box
from stvg.tubes import nearest_tracked

Box = tuple[float, float, float, float]
Status = Literal["kept", "flagged", "dropped"]


@dataclass(frozen=True)
class Vote:
    """The reconstructed label of one sample with its confidence and decision."""

    target_id: int | None
    status: Status
    reasons: tuple[str, ...]  # why it was flagged or dropped; () when kept
    n_gt_frames: int
    n_votes: int  # GT frames that cast a vote (best IoU > 0)
    n_untracked: int  # GT frames looked up on the nearest tracked frame
    vote_share: float
    margin: float
    runner_up_id: int | None
    mean_iou: float
    min_iou: float
    presence: float
    votes: dict[int, int]  # instance ID -> votes

    @property
    def reason(self) -> str:
        """Reasons joined with ``;`` (empty when kept)."""
        return ";".join(self.reasons)


def vote_target(
    gt_boxes: Mapping[int, Sequence[float]],
    tracks: Mapping[int, Mapping[int, Sequence[float]]],
    params: LabelParams,
    frame_shift: int = 0,
    n_frames: int | None = None,
    tracked: Sequence[int] | None = None,
) -> Vote:
    """Vote the target instance of one sample.

    ``gt_boxes``: native frame -> GT xyxy. ``tracks``: tracked frame -> {instance ID: xyxy} (the mask
    database's ``boxes_by_frame``). The GT box of frame g votes on the masks of frame g +
    ``frame_shift`` (``label_frame_shift``); with ``n_frames``, a partner frame past the video's end
    casts no vote (the official script finds no mask file there). ``tracked``: the frames the prompt
    stage tracked (``tubes.tracked_grid``; default: the frames of ``tracks``); a tracked
    frame without any box casts no vote.
    """
    frames = sorted(int(f) for f in gt_boxes)
    n = len(frames)
    if n == 0:
        return _dropped(("no_gt_boxes",), 0, 0)
    partners = [f + frame_shift for f in frames]
    exists = [n_frames is None or 0 <= g < n_frames for g in partners]
    lookup = nearest_tracked(partners, list(tracks) if tracked is None else tracked)
    n_untracked = sum(1 for g, t, ok in zip(partners, lookup, exists, strict=True) if ok and t != g)
    iou = box_iou_plus_one if params.box_convention == "official" else box_iou
    votes: dict[int, int] = {}
    first_win: dict[int, int] = {}  # instance -> position of the first frame it won (Counter order)
    iou_sum: dict[int, float] = {}
    iou_of: dict[int, list[float]] = {}  # instance -> its IoU on each GT frame where it is present
    for pos, (f, t, ok) in enumerate(zip(frames, lookup, exists, strict=True)):
        present = tracks.get(t, {}) if ok and t is not None else {}
        if not present:
            continue
        ids = sorted(int(i) for i in present)
        ious = iou(*_voting_boxes(gt_boxes[f], [present[i] for i in ids], params.box_convention))
        for i, v in zip(ids, ious.tolist(), strict=True):
            iou_of.setdefault(i, []).append(v)
            iou_sum[i] = iou_sum.get(i, 0.0) + v
        best = int(np.argmax(ious))  # first maximum = lowest ID on a tie
        if ious[best] > 0:
            votes[ids[best]] = votes.get(ids[best], 0) + 1
            first_win.setdefault(ids[best], pos)
    if not votes:
        return _dropped(("no_overlapping_instance",), n, n_untracked)
    if params.tie_break == "official":
        ranking = sorted(votes, key=lambda i: (-votes[i], first_win[i]))
    else:
        ranking = sorted(votes, key=lambda i: (-votes[i], -iou_sum.get(i, 0.0), i))
    return _vote(ranking, votes, iou_of, n, n_untracked, params)


def label_frame_shift(dataset: str, alignment: str) -> int:
    """Frames between a GT box and the masks it votes on: 1 under the official alignment on
    HC-STVG-format data (its 1-based ``st_frame`` used as a 0-based index), else 0."""
    return 1 if alignment == "official" and dataset in HCSTVG_LIKE else 0


def _voting_boxes(
    gt: Sequence[float], boxes: list[Sequence[float]], convention: str
) -> tuple[np.ndarray, np.ndarray]:
    """(GT box, candidate boxes) as the IoU of ``convention`` reads them: the official script's mask
    boxes end on their last pixel (our mask boxes end one past it)."""
    if convention == "official":
        boxes = [last_pixel_box(b) for b in boxes]
    return np.asarray(gt, dtype=np.float64), np.asarray(boxes, dtype=np.float64)


def _vote(
    ranking: list[int],
    votes: dict[int, int],
    iou_of: dict[int, list[float]],
    n: int,
    n_untracked: int,
    params: LabelParams,
) -> Vote:
    """The ``Vote`` of a ranking (winner first) with its confidence and decision."""
    winner = ranking[0]
    runner_up = ranking[1] if len(ranking) > 1 else None
    winner_ious = iou_of[winner]
    share = votes[winner] / n
    margin = (votes[winner] - (votes[runner_up] if runner_up is not None else 0)) / n
    presence = len(winner_ious) / n
    mean_iou = float(np.mean(winner_ious))
    status, reasons = decide(share, mean_iou, presence, params)
    return Vote(
        target_id=winner,
        status=status,
        reasons=reasons,
        n_gt_frames=n,
        n_votes=sum(votes.values()),
        n_untracked=n_untracked,
        vote_share=share,
        margin=margin,
        runner_up_id=runner_up,
        mean_iou=mean_iou,
        min_iou=float(np.min(winner_ious)),
        presence=presence,
        votes=dict(sorted(votes.items())),
    )


def decide(
    vote_share: float, mean_iou: float, presence: float, params: LabelParams
) -> tuple[Status, tuple[str, ...]]:
    """Kept, flagged or dropped, with every reason (a dropped sample lists all its failed thresholds)."""
    drops = []
    if vote_share < params.min_vote_share:
        drops.append(f"vote_share<{params.min_vote_share:g}")
    if mean_iou < params.min_mean_iou:
        drops.append(f"mean_iou<{params.min_mean_iou:g}")
    if presence < params.min_presence:
        drops.append(f"presence<{params.min_presence:g}")
    if drops:
        return "dropped", tuple(drops)
    if vote_share < params.flag_vote_share:
        return "flagged", (f"vote_share<{params.flag_vote_share:g}",)
    return "kept", ()


def _dropped(reasons: tuple[str, ...], n: int, n_untracked: int) -> Vote:
    return Vote(
        target_id=None,
        status="dropped",
        reasons=reasons,
        n_gt_frames=n,
        n_votes=0,
        n_untracked=n_untracked,
        vote_share=0.0,
        margin=0.0,
        runner_up_id=None,
        mean_iou=0.0,
        min_iou=0.0,
        presence=0.0,
        votes={},
    )


def sampled_span(times_s: Sequence[float], start_s: float, end_s: float) -> tuple[int, int] | None:
    """Indices of the first and last policy frames inside [start_s, end_s] (times in seconds).

    A span that falls between two sampled frames maps to the sampled frame nearest its middle, so a
    label always points at something the policy saw; None when nothing was sampled.
    """
    t = np.asarray(times_s, dtype=np.float64)
    if t.size == 0:
        return None
    inside = np.flatnonzero((t >= start_s - 1e-9) & (t <= end_s + 1e-9))
    if inside.size:
        return int(inside[0]), int(inside[-1])
    mid = int(np.argmin(np.abs(t - (start_s + end_s) / 2)))
    return mid, mid
