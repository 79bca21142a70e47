"""Label voting on scripted tracks: majority, ties, absent winner, partial presence, thresholds."""

from __future__ import annotations

import pytest

from stvg.config import LabelParams
from stvg.labels.voting import sampled_span, vote_target
from stvg.tubes import nearest_tracked

OURS = {"box_convention": "exclusive", "tie_break": "iou_sum"}  # the rules these hand cases check
GT = (10.0, 10.0, 30.0, 30.0)
ON = GT  # IoU 1 with GT
NEAR = (12.0, 10.0, 32.0, 30.0)  # IoU 0.818
FAR = (100.0, 100.0, 120.0, 120.0)  # IoU 0
LOOSE = LabelParams(**OURS, min_vote_share=0.0, flag_vote_share=0.0, min_mean_iou=0.0, min_presence=0.0)


def gt_tube(frames) -> dict[int, tuple]:
    return {f: GT for f in frames}


def test_majority_over_gt_frames_with_confidence() -> None:
    tracks = {f: {1: ON if f < 8 else FAR, 2: NEAR if f >= 8 else FAR} for f in range(10)}
    v = vote_target(gt_tube(range(10)), tracks, LabelParams(**OURS))
    assert v.target_id == 1 and v.runner_up_id == 2
    assert v.votes == {1: 8, 2: 2}
    assert v.vote_share == pytest.approx(0.8) and v.margin == pytest.approx(0.6)
    assert v.presence == 1.0
    assert v.mean_iou == pytest.approx(0.8) and v.min_iou == 0.0  # IoU 0 on the two frames it lost
    assert v.status == "kept" and v.reasons == ()


def test_equal_iou_within_a_frame_goes_to_the_lower_id() -> None:
    tracks = {0: {3: ON, 2: ON}}
    assert vote_target(gt_tube([0]), tracks, LOOSE).target_id == 2


def test_vote_count_tie_is_broken_by_summed_iou_then_id() -> None:
    # 1 wins frames 0,1 with IoU ~0.82; 2 wins frames 2,3 with IoU 1 -> 2 has the higher summed IoU
    tracks = {0: {1: NEAR}, 1: {1: NEAR}, 2: {2: ON}, 3: {2: ON}}
    assert vote_target(gt_tube(range(4)), tracks, LOOSE).target_id == 2
    # identical evidence: the lower ID
    tracks = {0: {5: ON}, 1: {4: ON}}
    assert vote_target(gt_tube(range(2)), tracks, LOOSE).target_id == 4


def test_id_present_in_part_of_the_tube_reports_presence_and_iou_where_present() -> None:
    tracks = {f: ({7: ON} if f < 4 else {}) for f in range(10)}
    v = vote_target(gt_tube(range(10)), tracks, LabelParams(**OURS, min_presence=0.5))
    assert v.target_id == 7 and v.presence == pytest.approx(0.4) and v.vote_share == pytest.approx(0.4)
    assert v.mean_iou == 1.0 and v.min_iou == 1.0
    assert v.status == "dropped" and "presence<0.5" in v.reasons and "vote_share<0.5" in v.reasons


def test_absent_winner_no_overlap_and_no_gt_are_dropped_with_reasons() -> None:
    assert vote_target(gt_tube(range(3)), {f: {1: FAR} for f in range(3)}, LabelParams(**OURS)).reasons == (
        "no_overlapping_instance",
    )
    assert vote_target(gt_tube(range(3)), {}, LabelParams(**OURS)).reasons == ("no_overlapping_instance",)
    v = vote_target({}, {0: {1: ON}}, LabelParams(**OURS))
    assert v.status == "dropped" and v.reason == "no_gt_boxes" and v.target_id is None


def test_flagged_between_min_and_flag_share() -> None:
    tracks = {f: {1: ON if f < 6 else FAR, 2: ON if f >= 6 else FAR} for f in range(10)}
    v = vote_target(gt_tube(range(10)), tracks, LabelParams(**OURS, min_vote_share=0.5, flag_vote_share=0.7))
    assert v.target_id == 1 and v.status == "flagged" and v.reason == "vote_share<0.7"


def test_low_mean_iou_is_dropped() -> None:
    weak = (10.0, 10.0, 50.0, 50.0)  # IoU 0.25
    v = vote_target(
        gt_tube(range(5)), {f: {1: weak} for f in range(5)}, LabelParams(**OURS, min_mean_iou=0.3)
    )
    assert v.status == "dropped" and v.reasons == ("mean_iou<0.3",)


def test_untracked_gt_frames_use_the_nearest_tracked_frame() -> None:
    assert nearest_tracked([0, 1, 2, 3, 4, 9], [0, 2, 4]) == [0, 0, 2, 2, 4, 4]  # ties -> earlier frame
    assert nearest_tracked([3], []) == [None]
    tracks = {0: {1: ON}, 4: {2: ON}}
    v = vote_target(gt_tube(range(5)), tracks, LOOSE)
    assert v.n_untracked == 3 and v.votes == {1: 3, 2: 2}


def test_sampled_span_maps_seconds_to_policy_frames() -> None:
    times = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert sampled_span(times, 0.4, 1.6) == (1, 3)
    assert sampled_span(times, 1.1, 1.2) == (2, 2)  # between two samples: the nearest to the middle
    assert sampled_span([], 0.0, 1.0) is None


def test_tracked_grid_is_every_frame_only_when_the_prompt_stage_says_so() -> None:
    from stvg.tubes import tracked_grid

    tracks = {0: {1: ON}, 4: {1: ON}}
    assert tracked_grid({"n_frames": 6, "tracked_frames": 6}, tracks) == list(range(6))
    assert tracked_grid({"n_frames": 6, "tracked_frames": 2}, tracks) == [0, 4]  # thinned tracking
    assert tracked_grid({"n_frames": 6}, tracks) == [0, 4]  # no count stated: the frames with boxes


def test_official_alignment_votes_one_frame_late_and_empty_frames_do_not_vote() -> None:
    """GT box of frame g votes on frame g + 1; a tracked frame with no box, or one past the end, does not."""
    tracks = {1: {2: ON}, 2: {1: ON}, 3: {1: ON}}  # frame 0 tracked but empty
    official = LabelParams(min_vote_share=0.0, flag_vote_share=0.0, min_mean_iou=0.0, min_presence=0.0)
    v = vote_target(gt_tube(range(4)), tracks, official, frame_shift=1, n_frames=4, tracked=range(4))
    assert v.votes == {1: 2, 2: 1} and v.n_votes == 3  # frame 3's partner (4) is past the end
    same = vote_target(gt_tube(range(4)), tracks, LOOSE, frame_shift=0, n_frames=4, tracked=range(4))
    assert same.votes == {1: 2, 2: 1}  # frames 1..3 vote, frame 0 is empty
    assert vote_target(gt_tube([0]), tracks, LOOSE, tracked=[0, 1, 2, 3]).target_id is None
    assert vote_target(gt_tube([0]), tracks, LOOSE).target_id == 2  # without the grid: nearest frame 1


def test_official_tie_break_keeps_the_instance_that_won_first() -> None:
    tracks = {0: {2: ON}, 1: {1: ON}, 2: {2: NEAR}, 3: {1: ON}}  # 2 votes each; 2 wins first, 1 has more IoU
    official = LabelParams(min_vote_share=0.0, flag_vote_share=0.0, min_mean_iou=0.0, min_presence=0.0)
    assert vote_target(gt_tube(range(4)), tracks, official).target_id == 2
    assert vote_target(gt_tube(range(4)), tracks, LOOSE).target_id == 1  # iou_sum: 2.0 against 1.8
