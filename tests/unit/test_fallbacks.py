"""Strict vs repaired predicted tubes: fallbacks apply only where the ID is absent and are counted."""

from __future__ import annotations

from stvg.evaluation.fallbacks import repaired_tube, strict_tube

A = (0.0, 0.0, 10.0, 10.0)
B = (100.0, 100.0, 140.0, 140.0)  # larger, far away
A2 = (2.0, 0.0, 12.0, 10.0)  # overlaps A


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
    assert repaired_tube(db, 1, [0, 1]).boxes[1] == B


def test_nearest_frame_of_the_id_anchors_when_no_previous_box() -> None:
    db = {0: {2: B, 3: A2}, 5: {1: A}}
    tube = repaired_tube(db, 1, [0, 5])
    assert tube.boxes[0] == A2 and tube.source[0] == "nearest"
    assert tube.source[5] == "id"


def test_largest_when_the_id_never_exists() -> None:
    db = {0: {2: A, 3: B}}
    tube = repaired_tube(db, 7, [0])
    assert tube.boxes == {0: B} and tube.fallback_counts["largest"] == 1


def test_frames_without_any_mask_get_no_box() -> None:
    db = {0: {1: A}}
    tube = repaired_tube(db, 1, [0, 1, 2])
    assert set(tube.boxes) == {0}


def test_only_the_given_frames_are_filled_and_counted() -> None:
    """The scored frames: a box before them does not seed 'previous', frames after them are left alone."""
    db = {0: {1: A}, 1: {2: B, 3: A2}, 2: {2: B}, 3: {2: B}, 4: {1: A}}
    tube = repaired_tube(db, 1, [1, 2])
    assert set(tube.boxes) == {1, 2}
    assert tube.source == {1: "nearest", 2: "previous"}  # frame 0's box is the nearest anchor only
    assert tube.boxes[1] == A2 and tube.boxes[2] == B  # B: nothing overlaps A2, the largest box
    assert tube.fallback_counts == {"previous": 1, "nearest": 1, "largest": 0}
    assert sum(repaired_tube(db, 1, range(5)).fallback_counts.values()) == 3
