"""The prompting ceiling: the score a policy would get by answering exactly the voted ID and the GT span.

It is scored by ``evaluation.metrics.score_tube``, the same function the evaluate stage uses, so the
ceiling is directly comparable with the policy's numbers: the predicted time span is the GT span in
seconds and the predicted boxes are the voted instance's tracked boxes (the mask database's tube),
read as the protocol reads mask boxes (``TubeProtocol.mask_box``). Native frames that were not
tracked (``prompt.track_fps`` below the native rate) take the box of the nearest tracked frame (the
earlier one on a tie), or none when the instance is absent there (``tubes.tracked_grid``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stvg.evaluation.metrics import PROTOCOLS, TubeProtocol, TubeScore, score_tube, seconds_to_span
from stvg.records import Box, Sample
from stvg.tubes import fill_untracked, protocol_boxes


def prompting_ceiling(
    sample: Sample,
    tube: Mapping[int, Box],
    tracked_frames: Sequence[int],
    protocol: TubeProtocol = PROTOCOLS["official"],
) -> TubeScore:
    """Score of answering the voted instance (``tube``: tracked frame -> mask xyxy) with the GT time span."""
    if sample.gt_span_s is None:
        raise ValueError(f"sample {sample.sample_id}: no GT time span, so no prompting ceiling")
    start, end = seconds_to_span(*sample.gt_span_s, sample.fps, sample.n_frames, protocol.time_to_frame)
    gt_frames = [*sample.gt_boxes, *(sample.gt_span_frames or ())]
    lo, hi = min([start, *gt_frames]), max([end, *gt_frames])  # every frame any protocol may read
    frames = list(range(max(lo - 1, 0), min(hi + 1, sample.n_frames - 1) + 1))
    boxes = fill_untracked(protocol_boxes(tube, protocol), frames, tracked_frames)
    return score_tube(sample, sample.gt_span_s, boxes, protocol)
