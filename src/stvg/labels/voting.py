"""Label reconstruction: which tracked instance is the GT tube, by per-frame best IoU and majority vote.

Like the official ``trainjson.py``: on every GT frame the instance whose tracked box (tight box of its
mask) has the highest IoU with the GT box casts a vote, and the label is the most voted instance.
Departures, all deliberate:

- IoU without +1 (``geometry``); the official script uses the +1 pixel convention.
- A frame casts a vote only when its best IoU is > 0 (as the script: "only positive IoU counts");
  there is no other minimum, but every IoU is recorded.
- GT frames that were not tracked (``prompt.track_fps`` below the native rate) are looked up on the
  nearest tracked frame (the earlier one on a tie); ``n_untracked`` counts them.
- Ties are broken deterministically: within a frame, equal IoUs go to the lower instance ID; between
  instances with equal vote counts, the higher summed IoU over all GT frames wins, then the lower ID
  (the script's ``Counter.most_common`` keeps whichever won a frame first).
- A confidence is kept and thresholds (``LabelParams``) decide kept / flagged / dropped with reasons.

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
from stvg.geometry import box_iou
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
) -> Vote:
    """Vote the target instance of one sample.

    ``gt_boxes``: native frame -> GT xyxy. ``tracks``: tracked frame -> {instance ID: xyxy} (the mask
    database's ``boxes_by_frame``).
    """
    frames = sorted(int(f) for f in gt_boxes)
    n = len(frames)
    if n == 0:
        return _dropped(("no_gt_boxes",), 0, 0)
    lookup = nearest_tracked(frames, list(tracks))
    n_untracked = sum(1 for f, t in zip(frames, lookup) if t != f)
    votes: dict[int, int] = {}
    iou_sum: dict[int, float] = {}
    iou_of: dict[int, list[float]] = {}  # instance -> its IoU on each GT frame where it is present
    for f, t in zip(frames, lookup):
        present = tracks.get(t, {}) if t is not None else {}
        if not present:
            continue
        ids = sorted(int(i) for i in present)
        ious = box_iou(
            np.asarray(gt_boxes[f], dtype=np.float64), np.asarray([present[i] for i in ids], dtype=np.float64)
        )
        for i, v in zip(ids, ious.tolist()):
            iou_of.setdefault(i, []).append(v)
            iou_sum[i] = iou_sum.get(i, 0.0) + v
        best = int(np.argmax(ious))  # first maximum = lowest ID on a tie
        if ious[best] > 0:
            votes[ids[best]] = votes.get(ids[best], 0) + 1
    if not votes:
        return _dropped(("no_overlapping_instance",), n, n_untracked)
    ranking = sorted(votes, key=lambda i: (-votes[i], -iou_sum.get(i, 0.0), i))
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
