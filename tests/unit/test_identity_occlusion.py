"""Repair rules for occlusions and crossings on scripted tracks: switch splitting that spares a
covered shape, motion-fitted and class-aware fragment merging, gap filling, and the engine's
visible-part fill."""

from __future__ import annotations

import numpy as np
import pytest

from stvg.geometry import mask_to_box
from stvg.prompting.backends.synthetic_cpu.blobs import split_blobs
from stvg.prompting.fill import fill_occluded
from stvg.prompting.identity import (
    MergeRules,
    Observation,
    RepairRules,
    box_mask,
    center_distance,
    fill_gaps,
    merge_fragments,
    motion_box,
    repair_tracks,
    split_switches,
    track_label,
)
from stvg.prompting.maskdb import encode_mask


def merge(tracks, max_gap, min_iou, *, similarity=None, **kw):
    """``merge_fragments`` with its rules as keywords (max_center_dist, window, max_overlap)."""
    return merge_fragments(tracks, MergeRules(max_gap=max_gap, min_iou=min_iou, **kw), similarity)


def rules(max_gap=10, min_iou=0.3, *, window=1, max_overlap=0, **kw):
    """``RepairRules`` with merge knobs in frames and the rest as keywords."""
    m = MergeRules(max_gap=max_gap, min_iou=min_iou, window=window, max_overlap=max_overlap)
    return RepairRules(merge=m, **kw)


def obs(x1: float, y1: float, x2: float, y2: float, label: int = -1) -> Observation:
    return Observation(box=(x1, y1, x2, y2), area=int((x2 - x1) * (y2 - y1)), score=0.9, label=label)


def moving(x0: float, y: float, frames: range, vx: float = 2.0, size: float = 20.0, label: int = -1):
    return {f: obs(x0 + vx * f, y, x0 + vx * f + size, y + size, label) for f in frames}


def test_covered_shape_whose_box_lands_on_the_occluder_is_not_cut():
    front = moving(60, 10, range(20), vx=-2.0)  # passes in front, moving left
    behind = moving(0, 10, range(20), vx=2.0)
    # while covered, the box given to the shape behind lies on the occluder (detector boxes of an
    # overlapping pair), but the occluder's own track goes on along its path: no switch
    for f in range(10, 14):
        x1, y1, x2, y2 = front[f].box
        behind[f] = obs(x1 + 2, y1, x2 + 2, y2)
    out, log, _ = split_switches({1: behind, 2: front}, min_iou=0.3)
    assert log == [] and len(out) == 2


def test_takeover_of_a_vanished_track_is_still_cut():
    a = moving(0, 10, range(10))
    b = moving(0, 60, range(20))
    # track 1 follows A, then jumps onto B's path while B's own track ends: a takeover
    jumped = {**a, **{f: b[f] for f in range(10, 20)}}
    out, log, _ = split_switches({1: jumped, 2: {f: b[f] for f in range(10)}}, min_iou=0.3)
    assert [r["frame"] for r in log] == [10]
    assert len(out) == 3


def test_motion_box_fits_velocity_over_a_window_and_ignores_one_shrunken_box():
    track = moving(0, 10, range(5), vx=3.0)
    track[4] = obs(12, 10, 16, 30)  # covered on its last frame: a narrow sliver
    fit = motion_box(track, 8, window=4)
    two_point = motion_box(track, 8, window=1)
    centre_fit = (fit[0] + fit[2]) / 2
    assert fit[2] - fit[0] == pytest.approx(20)  # median size, not the sliver's
    assert abs(centre_fit - (3 * 8 + 10)) < abs((two_point[0] + two_point[2]) / 2 - (3 * 8 + 10))
    back = motion_box(moving(0, 10, range(5, 10), vx=3.0), 0, backward=True, window=4)
    assert back == pytest.approx((0, 10, 20, 30))


def test_entering_shape_is_merged_by_centre_distance_when_iou_is_too_low():
    # a shape entering from the left: boxes grow fast, so extrapolated boxes overlap little
    first = {f: obs(0, 50, 4 + 6 * f, 70) for f in range(3)}
    second = {f: obs(6 * f - 30, 50, 6 * f - 10, 70) for f in range(7, 12)}
    tracks = {1: first, 2: second}
    assert set(merge(tracks, max_gap=5, min_iou=0.9)[0]) == {1, 2}
    merged, log, _ = merge(tracks, max_gap=5, min_iou=0.9, max_center_dist=2.0, window=4)
    assert set(merged) == {1} and log[0]["merged"] == 2


def test_a_shape_that_stopped_while_hidden_is_merged_where_it_vanished():
    # moving right until it goes behind something at frame 9; it stops there and comes out moving up
    before = moving(0, 50, range(10), vx=4.0)
    after = {f: obs(36, 50 - 5 * (f - 22), 56, 70 - 5 * (f - 22)) for f in range(22, 30)}
    tracks = {1: before, 2: after}
    # neither motion reaches the other end (48 px right, 60 px down of it): only the stopped-object
    # hypothesis links them
    merged, log, _ = merge(tracks, max_gap=15, min_iou=0.3, window=4)
    assert set(merged) == {1} and log[0]["merged"] == 2
    elsewhere = {
        1: before,
        2: {f: obs(o.box[0] + 40, o.box[1], o.box[2] + 40, o.box[3]) for f, o in after.items()},
    }
    assert set(merge(elsewhere, max_gap=15, min_iou=0.3, window=4)[0]) == {1, 2}


def test_fragments_of_different_classes_are_never_merged():
    a = moving(0, 10, range(10), label=0)
    b_same = moving(0, 10, range(13, 20), label=0)
    b_other = moving(0, 10, range(13, 20), label=2)
    assert set(merge({1: a, 2: b_same}, max_gap=5, min_iou=0.3)[0]) == {1}
    assert set(merge({1: a, 2: b_other}, max_gap=5, min_iou=0.3)[0]) == {1, 2}
    unknown = moving(0, 10, range(13, 20))  # no class known: motion decides
    assert set(merge({1: a, 2: unknown}, max_gap=5, min_iou=0.3)[0]) == {1}


def test_track_label_is_the_majority_known_class():
    frames = {0: obs(0, 0, 1, 1, 2), 1: obs(0, 0, 1, 1, 2), 2: obs(0, 0, 1, 1, 0), 3: obs(0, 0, 1, 1)}
    assert track_label(frames) == 2
    assert track_label({0: obs(0, 0, 1, 1)}) == -1


def test_fill_gaps_interpolates_short_gaps_only():
    track = {0: obs(0, 0, 10, 10), 4: obs(8, 4, 18, 14), 20: obs(0, 0, 10, 10)}
    filled = fill_gaps({1: track}, max_gap=5)
    assert sorted(filled[1]) == [1, 2, 3]  # the 15-frame gap stays open
    assert filled[1][2] == pytest.approx((4, 2, 14, 12))
    assert fill_gaps({1: {0: obs(0, 0, 1, 1), 1: obs(0, 0, 1, 1)}}, max_gap=5) == {}


def test_center_distance_is_in_units_of_the_first_box():
    assert center_distance((0, 0, 10, 10), (10, 0, 20, 10)) == pytest.approx(1.0)
    assert center_distance((0, 0, 20, 20), (10, 0, 30, 20)) == pytest.approx(0.5)


def _observed(box: tuple[float, float, float, float], h: int = 60, w: int = 80) -> Observation:
    m = box_mask(box, h, w)
    return Observation(box=mask_to_box(m), area=int(m.sum()), score=0.9, payload=encode_mask(m), label=1)


def test_fill_occluded_keeps_only_the_visible_part_of_the_filled_box():
    h, w = 60, 80
    behind = {0: _observed((10, 10, 30, 30)), 4: _observed((18, 10, 38, 30))}
    front = {2: _observed((24, 5, 50, 40))}  # covers the right part of the box behind on frame 2
    out, n = fill_occluded({1: behind, 2: front}, max_gap=5, height=h, width=w)
    assert sorted(out[1]) == [0, 1, 2, 3, 4] and n == 3
    f2 = out[1][2]
    assert f2.filled and f2.score == 0.0 and f2.label == 1
    assert f2.box == pytest.approx((14, 10, 24, 30))  # interpolated (14..34) minus the occluder from x=24
    assert sorted(out[2]) == [2]


def test_fill_occluded_skips_fully_hidden_frames():
    h, w = 60, 80
    behind = {0: _observed((10, 10, 30, 30)), 2: _observed((10, 10, 30, 30))}
    front = {1: _observed((0, 0, 60, 50))}
    out, n = fill_occluded({1: behind, 2: front}, max_gap=5, height=h, width=w)
    assert n == 0 and sorted(out[1]) == [0, 2]
    assert np.isclose(out[1][0].box, (10, 10, 30, 30)).all()


def test_a_track_opened_while_the_old_one_lingers_on_a_duplicate_is_merged():
    a = moving(0, 10, range(21))  # object X, frames 0..20
    b = moving(0, 10, range(18, 40))  # the tracker opened a second track on X at 18: duplicates 18..20
    assert set(merge({1: a, 2: b}, max_gap=5, min_iou=0.3)[0]) == {1, 2}  # no overlap allowed
    merged, log, absorbed = merge({1: a, 2: b}, max_gap=5, min_iou=0.3, max_overlap=5)
    assert set(merged) == {1} and sorted(merged[1]) == list(range(40))
    assert absorbed == {2: 1} and log[0]["gap_frames"] == -3  # three shared frames
    assert "before track 1 ends" in log[0]["reason"]


def test_a_new_track_whose_first_box_spans_two_shapes_is_merged_and_the_old_box_kept():
    a = moving(0, 10, range(21))
    b = moving(0, 10, range(19, 40))
    for f in (19, 20):  # B's first two boxes hold X and a neighbour below it
        x1, y1, x2, y2 = b[f].box
        b[f] = obs(x1 - 4, y1, x2 + 4, y2 + 30)
    merged, _, _ = merge({1: a, 2: b}, max_gap=5, min_iou=0.3, max_overlap=5)
    assert set(merged) == {1}
    assert merged[1][19].box == a[19].box or merged[1][19].box == b[19].box
    assert len(merged[1]) == 40


def test_two_tracks_that_each_follow_their_own_object_through_the_overlap_stay_apart():
    a = moving(0, 10, range(21), vx=2.0)  # X moving right, ends at 20
    # Y starts at 17 just ahead of where X is heading, moving down: on the shared frames 17..20
    # each track keeps to its own path, so they are two objects even though B starts near A's path
    b = {f: obs(44, 10 + 3 * (f - 17), 64, 30 + 3 * (f - 17)) for f in range(17, 40)}
    merged, log, _ = merge({1: a, 2: b}, max_gap=5, min_iou=0.05, max_overlap=5)
    assert set(merged) == {1, 2} and log == []


def crossing_with_group_box() -> dict:
    """Two shapes cross; while they overlap (frames 8..11) the detector returned one box around both,
    which the tracker gave to track 1 (the left shape's); track 2 (the right one) kept its own box."""
    left = moving(0, 10, range(20), vx=3.0)  # 20 px squares, x from 0 to 57
    right = moving(40, 24, range(20), vx=-1.0)
    t1 = dict(left)
    for t in range(8, 12):
        a, b = left[t].box, right[t].box
        t1[t] = obs(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    return {1: t1, 2: right}, left


def test_a_track_holding_a_group_box_is_cut_out_of_it():
    tracks, left = crossing_with_group_box()
    out, log, origin = split_blobs(tracks, ratio=1.6)
    assert sorted(out) == [1, 2, 3] and origin == {1: 1, 2: 2, 3: 1}
    assert sorted(out[1]) == list(range(8)) and sorted(out[3]) == list(range(12, 20))
    assert log == [{**log[0], "kind": "split_blob", "track": 1, "frames": [[8, 11]]}]
    repaired = repair_tracks(out, rules(max_gap=6, window=4), origin=origin)
    # the two pieces of the left shape are one ID again; its group boxes are gone
    assert len(repaired.tracks) == 2
    ids = {tid: sorted(f) for tid, f in repaired.tracks.items()}
    one = next(tid for tid, f in ids.items() if 0 in f and 19 in f and 9 not in f)
    assert all(repaired.tracks[one][t].box == left[t].box for t in ids[one])


def test_a_growing_object_or_a_box_holding_nothing_is_not_cut():
    # coming closer: 20 px wide at frame 0, 8 % more area every frame (4.6x in all)
    approaching = {f: obs(50, 10, 50 + 20 * 1.04**f, 30 * 1.04**f) for f in range(40)}
    bag = {f: obs(55, 15, 60, 20) for f in range(40)}  # always inside it
    out, log, _ = split_blobs({1: approaching, 2: bag}, ratio=1.6)
    assert log == [] and sorted(out) == [1, 2]
    tracks, _ = crossing_with_group_box()
    alone = {1: tracks[1]}  # the same swollen boxes, but no other track inside them
    assert split_blobs(alone, ratio=1.6)[1] == []


def takeover_with_a_stray_head() -> dict:
    """Track 2 opens on shape Z coming down (frames 17..20), then jumps onto X when X's track 1 ends
    at 20 and follows X on; Z, undetected meanwhile, gets its own track 3 from frame 28."""
    x = moving(0, 60, range(40), vx=2.0)
    z = {f: obs(100, 5 + 3 * f - 51, 120, 25 + 3 * f - 51) for f in range(17, 40)}
    return {
        1: {f: x[f] for f in range(21)},
        2: {**{f: z[f] for f in range(17, 21)}, **{f: x[f] for f in range(21, 40)}},
        3: {f: z[f] for f in range(28, 40)},
    }


def test_boxes_left_out_of_an_overlapping_merge_become_their_own_fragment_and_are_linked():
    tracks = takeover_with_a_stray_head()
    merged, log, absorbed = merge(tracks, max_gap=10, min_iou=0.3, window=4, max_overlap=5)
    stray = next(r for r in log if r["kind"] == "stray_fragment")
    assert stray["track"] == 2 and stray["frames"] == [17, 20]
    z_id = stray["new_track"]  # the stray fragment heads Z's chain: it starts first
    assert set(merged) == {1, z_id} and absorbed == {2: 1, 3: z_id}
    assert sorted(merged[1]) == list(range(40)) and merged[1][18].box == tracks[1][18].box
    # Z's first boxes are not thrown away: they are linked with Z's later track
    assert sorted(merged[z_id]) == [*range(17, 21), *range(28, 40)]
    assert merged[z_id][18].box == tracks[2][18].box


def test_a_left_out_box_that_another_track_holds_is_no_stray():
    tracks = takeover_with_a_stray_head()
    tracks[4] = {f: tracks[2][f] for f in range(17, 21)}  # a track already follows Z there
    merged, log, _ = merge(tracks, max_gap=10, min_iou=0.3, window=4, max_overlap=5)
    assert not any(r["kind"] == "stray_fragment" for r in log)
    assert sum(18 in frames for frames in merged.values()) == 2  # X and Z once each, no duplicate


def test_repair_maps_every_raw_track_and_no_invented_one():
    tracks = takeover_with_a_stray_head()
    # switch splitting off: in this clean script it would cut track 2 at its jump itself
    p = rules(max_gap=10, min_iou=0.3, window=4, max_overlap=5, fix_switches=False)
    result = repair_tracks(tracks, p)
    assert any(r["kind"] == "stray_fragment" for r in result.repairs)
    assert len(result.tracks) == 2
    assert set(result.id_map) == {1, 2, 3}  # raw ids only: the stray fragment maps through track 2
    assert result.id_map[1] == result.id_map[2] != result.id_map[3]


def test_boxes_the_old_track_followed_off_its_path_become_a_stray_fragment_of_the_old_track():
    # time-reversed takeover: track 1 follows X, then (frames 17..20) jumps off onto Z, which no
    # track holds, while track 2 already follows X from 17; Z keeps a track of its own up to 12
    x = moving(0, 60, range(40), vx=2.0)
    z = {f: obs(100, 2 * f, 120, 20 + 2 * f) for f in range(21)}  # Z moving down
    tracks = {
        1: {**{f: x[f] for f in range(17)}, **{f: z[f] for f in range(17, 21)}},
        2: {f: x[f] for f in range(17, 40)},
        3: {f: z[f] for f in range(13)},
    }
    merged, log, _ = merge(tracks, max_gap=10, min_iou=0.3, window=4, max_overlap=5)
    stray = next(r for r in log if r["kind"] == "stray_fragment")
    assert stray["track"] == 1 and stray["frames"] == [17, 20]
    assert sorted(merged[1]) == list(range(40)) and merged[1][18].box == x[18].box
    assert sorted(merged[3]) == [*range(13), *range(17, 21)]  # Z's boxes re-linked with Z's track
