"""Strict vs repaired predicted tubes: the official fallbacks, only where the ID is absent, counted."""

from __future__ import annotations

from stvg.evaluation.fallbacks import repaired_tube, strict_tube

A = (0.0, 0.0, 10.0, 10.0)
B = (100.0, 100.0, 140.0, 140.0)  # larger, far away
A2 = (2.0, 0.0, 12.0, 10.0)  # overlaps A
A3 = (4.0, 0.0, 14.0, 10.0)  # overlaps A2 more than A


def test_strict_tube_leaves_missing_frames_empty() -> None:
    db = {0: {1: A, 2: B}, 1: {2: B}, 2: {1: A2}}
    tube = strict_tube(db, 1, range(3))
    assert tube.boxes == {0: A, 2: A2}
    assert tube.fallback_counts == {"previous": 0, "nearest": 0, "largest": 0}


def test_previous_box_continues_with_best_overlap_not_largest() -> None:
    db = {0: {1: A}, 1: {2: B, 3: A2}}
    tube = repaired_tube(db, 1, [0, 1])
    assert tube.boxes[1] == A2 and tube.source[1] == "previous"


def test_previous_without_overlap_takes_largest() -> None:
    db = {0: {1: A}, 1: {2: B, 3: (50.0, 50.0, 52.0, 52.0)}}
    tube = repaired_tube(db, 1, [0, 1])
    assert tube.boxes[1] == B and tube.source[1] == "largest"


def test_the_anchor_stays_on_the_ids_own_last_box() -> None:
    """Frame 1 picks A2 (best overlap with A); frame 2 still compares with A, not with A2."""
    db = {0: {1: A}, 1: {3: A2}, 2: {3: A3, 4: A2}}
    tube = repaired_tube(db, 1, [0, 1, 2])
    assert tube.boxes[2] == A2  # IoU(A, A2) > IoU(A, A3); anchoring on A2 would pick A3


def test_largest_is_re_picked_on_every_frame() -> None:
    """Without overlap the largest box is taken, and it does not become the anchor."""
    small = (60.0, 60.0, 70.0, 70.0)
    db = {0: {1: A}, 1: {2: B, 3: small}, 2: {3: small, 5: (101.0, 101.0, 141.0, 141.0)}}
    tube = repaired_tube(db, 1, [0, 1, 2])
    assert tube.boxes[1] == B and tube.boxes[2] == (101.0, 101.0, 141.0, 141.0)
    assert tube.source == {0: "id", 1: "largest", 2: "largest"}


def test_nearest_frame_of_the_id_anchors_when_no_previous_box() -> None:
    db = {0: {2: B, 3: A2}, 5: {1: A}}
    tube = repaired_tube(db, 1, [0, 5])
    assert tube.boxes[0] == A2 and tube.source[0] == "nearest"
    assert tube.source[5] == "id"


def test_nearest_without_overlap_reuses_the_ids_own_box() -> None:
    db = {0: {2: B}, 3: {1: A}}
    tube = repaired_tube(db, 1, [0, 3])
    assert tube.boxes[0] == A and tube.source[0] == "nearest"


def test_largest_when_the_id_never_exists() -> None:
    db = {0: {2: A, 3: B}}
    tube = repaired_tube(db, 7, [0])
    assert tube.boxes == {0: B} and tube.fallback_counts["largest"] == 1


def test_an_existing_frame_without_boxes_keeps_the_ids_last_box() -> None:
    """The official loop reads an empty mask file there: nothing to continue, so the ID's last box."""
    db = {0: {1: A}}
    tube = repaired_tube(db, 1, [0, 1, 2])
    assert tube.boxes == {0: A, 1: A, 2: A} and tube.source == {0: "id", 1: "nearest", 2: "nearest"}
    assert repaired_tube({1: {2: B}}, 1, [0, 1]).boxes == {1: B}  # no ID anywhere: frame 0 stays empty


def test_only_the_given_frames_are_filled_and_counted() -> None:
    """The scored frames: the ID's boxes outside them neither anchor nor count (official loop)."""
    db = {0: {1: A}, 1: {2: B, 3: A2}, 2: {2: B}, 3: {2: B}, 4: {1: A}}
    tube = repaired_tube(db, 1, [1, 2])
    assert set(tube.boxes) == {1, 2}
    assert tube.source == {1: "largest", 2: "largest"}  # frames 0 and 4 are outside the overlap
    assert tube.boxes[1] == B and tube.boxes[2] == B
    full = repaired_tube(db, 1, range(5))
    assert full.source == {0: "id", 1: "previous", 2: "largest", 3: "largest", 4: "id"}
    assert full.fallback_counts == {"previous": 1, "nearest": 0, "largest": 2}
