"""Pure identity logic: keyframe matching (incl. the containment option) and whole-video ID repair."""

from __future__ import annotations

import numpy as np
import pytest

from stvg.prompting.identity import (
    MergeRules,
    Observation,
    RepairRules,
    box_mask,
    count_new_ids,
    extrapolate_box,
    match_keyframe,
    merge_fragments,
    renumber,
    repair_tracks,
    split_switches,
)

H, W = 100, 160


def merge(tracks, max_gap, min_iou, *, similarity=None, **kw):
    """``merge_fragments`` with its rules as keywords (max_center_dist, window, max_overlap)."""
    return merge_fragments(tracks, MergeRules(max_gap=max_gap, min_iou=min_iou, **kw), similarity)


def rules(max_gap=10, min_iou=0.3, *, window=1, max_overlap=0, **kw):
    """``RepairRules`` with merge knobs in frames and the rest as keywords."""
    m = MergeRules(max_gap=max_gap, min_iou=min_iou, window=window, max_overlap=max_overlap)
    return RepairRules(merge=m, **kw)


def obs(x: float, y: float, size: float = 20.0, area: int | None = None) -> Observation:
    return Observation(
        box=(x, y, x + size, y + size), area=area if area is not None else int(size * size), score=0.9
    )


def moving(x0: float, y: float, frames: range, vx: float = 2.0, size: float = 20.0) -> dict[int, Observation]:
    return {f: obs(x0 + vx * f, y, size) for f in frames}


# ----------------------------------------------------------------------------------------------- keyframes


def test_detection_overlapping_a_tracked_mask_is_not_new():
    existing = {7: box_mask((10, 10, 40, 40), H, W)}
    same = box_mask((12, 11, 41, 40), H, W)
    other = box_mask((100, 50, 130, 80), H, W)
    d = match_keyframe([same, other], existing, id_iou=0.4)
    assert d.matched == {0: 7}
    assert d.new == (1,)


def test_two_detections_of_one_new_object_create_one_id():
    a = box_mask((50, 50, 80, 80), H, W)
    b = box_mask((51, 50, 81, 80), H, W)
    d = match_keyframe([a, b], {}, id_iou=0.4, scores=[0.5, 0.9])
    assert d.new == (1,)  # the higher-scoring one is kept
    assert d.duplicates == (0,)


def test_iou_threshold_is_inclusive_and_respected():
    existing = {1: box_mask((0, 0, 20, 10), H, W)}
    half = box_mask((10, 0, 30, 10), H, W)  # IoU 1/3
    assert match_keyframe([half], existing, id_iou=0.4).new == (0,)
    assert match_keyframe([half], existing, id_iou=1 / 3).matched == {0: 1}


def test_containment_rule_is_off_by_default_and_replaces_when_on():
    small_tracked = {3: box_mask((20, 20, 40, 40), H, W)}
    big = box_mask((10, 10, 50, 50), H, W)  # IoU 0.25, covers the tracked mask fully
    off = match_keyframe([big], small_tracked, id_iou=0.4)
    assert off.new == (0,) and off.replaced == {}
    on = match_keyframe([big], small_tracked, id_iou=0.4, containment=True, containment_ratio=0.6)
    assert on.new == (0,) and on.replaced == {3: 0}
    # the smaller of the two loses: a small detection inside a big tracked mask is dropped
    big_tracked = {4: big}
    small = box_mask((20, 20, 40, 40), H, W)
    on2 = match_keyframe([small], big_tracked, id_iou=0.4, containment=True)
    assert on2.new == () and on2.dropped_contained == (0,)


def test_empty_keyframe():
    d = match_keyframe([], {1: box_mask((0, 0, 5, 5), H, W)}, id_iou=0.4)
    assert d.new == () and d.matched == {}


# ----------------------------------------------------------------------------------------------- repair


def test_extrapolation_continues_constant_velocity():
    track = {0: obs(0, 0), 1: obs(2, 1)}
    assert extrapolate_box(track, 5) == pytest.approx((10, 5, 30, 25))
    assert extrapolate_box(track, -1, backward=True) == pytest.approx((-2, -1, 18, 19))


def test_fragments_of_one_instance_are_merged_and_logged():
    tracks = {1: moving(0, 10, range(10)), 2: moving(0, 10, range(14, 30)), 3: moving(0, 60, range(30))}
    merged, log, absorbed = merge(tracks, max_gap=5, min_iou=0.3)
    assert set(merged) == {1, 3}
    assert sorted(merged[1]) == [*range(10), *range(14, 30)]
    assert absorbed == {2: 1}
    assert log[0]["kind"] == "merge" and log[0]["gap_frames"] == 4


def test_fragments_too_far_apart_in_time_or_space_stay_separate():
    far_in_time = {1: moving(0, 10, range(10)), 2: moving(0, 10, range(30, 40))}
    assert set(merge(far_in_time, max_gap=5, min_iou=0.3)[0]) == {1, 2}
    elsewhere = {1: moving(0, 10, range(10)), 2: moving(100, 70, range(11, 20))}
    assert set(merge(elsewhere, max_gap=5, min_iou=0.3)[0]) == {1, 2}


def test_injected_id_switch_is_split_and_relinked():
    a = moving(0, 10, range(40))  # object A, top row
    b = moving(0, 60, range(40))  # object B, bottom row
    switched = {
        1: {f: (a[f] if f < 20 else b[f]) for f in range(40)},
        2: {f: (b[f] if f < 20 else a[f]) for f in range(40)},
    }
    result = repair_tracks(switched, rules(max_gap=5, min_iou=0.3))
    assert len(result.tracks) == 2
    for frames in result.tracks.values():
        ys = {o.box[1] for o in frames.values()}
        assert len(ys) == 1, "each repaired instance stays on one object"
        assert len(frames) == 40
    kinds = [r["kind"] for r in result.repairs]
    assert kinds.count("split") == 2 and kinds.count("merge") == 2


def test_switch_split_needs_another_track_to_explain_the_jump():
    jumpy = {1: {**moving(0, 10, range(10)), **moving(0, 70, range(10, 20))}}
    out, log, _ = split_switches(jumpy, min_iou=0.3)
    assert len(out) == 1 and log == []


def test_size_filter_short_tracks_and_renumbering():
    tracks = {
        5: {f: obs(100, 10, 40) for f in range(3, 10)},  # appears second
        9: {f: obs(0, 10, 40) for f in range(10)},  # appears first
        2: {f: obs(50, 60, 10) for f in range(10)},  # tiny: 100 px vs 1600 px
        7: {4: obs(0, 55, 40)},  # one frame: noise
    }
    off = repair_tracks(tracks, rules(size_filter_ratio=0.0, min_track_frames=2, merge_fragments=False))
    assert len(off.tracks) == 3
    on = repair_tracks(tracks, rules(size_filter_ratio=1 / 3, min_track_frames=2, merge_fragments=False))
    assert sorted(on.tracks) == [1, 2]
    assert on.id_map[9] == 1 and on.id_map[5] == 2
    assert {r["kind"] for r in on.repairs} >= {"size_filter", "drop_short"}
    assert min(on.tracks[1]) == 0 and min(on.tracks[2]) == 3


def test_renumber_orders_by_first_appearance_then_left_to_right():
    tracks = {10: {2: obs(0, 0)}, 11: {0: obs(50, 0)}, 12: {0: obs(5, 0)}}
    out, mapping = renumber(tracks)
    assert mapping == {12: 1, 11: 2, 10: 3}
    assert list(out) == [1, 2, 3]


def test_count_new_ids():
    assert count_new_ids({1: {0: obs(0, 0)}, 2: {5: obs(0, 0)}, 3: {9: obs(0, 0)}}) == 2
    assert count_new_ids({}) == 0


def test_box_mask_clips_to_frame():
    m = box_mask((-5, -5, 10.2, 3), 8, 8)
    assert m.shape == (8, 8) and m[:3].all() and not m[3:].any()
    assert not box_mask((20, 20, 30, 30), 8, 8).any()
    assert np.array_equal(box_mask((2, 2, 4, 4), 8, 8).nonzero()[0], [2, 2, 3, 3])
