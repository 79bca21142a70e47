"""Composite detections: a box around two objects the detector also found one by one is dropped;
a box holding a single other one, or two that do not fill it, is kept."""

from __future__ import annotations

from stvg.prompting.composites import composite_indices, drop_composites
from stvg.records import Detection


def test_a_group_box_around_two_detected_objects_is_dropped_whatever_its_score():
    a, b = (26, 164, 67, 206), (26, 144, 66, 183)  # two touching squares
    group = (24, 145, 71, 205)  # measured on the benchmark: the group box scored above both
    dets = [
        (Detection(0, group, 0.64), "g"),
        (Detection(0, a, 0.59), "a"),
        (Detection(0, b, 0.36), "b"),
        (Detection(0, (200, 10, 240, 50), 0.9), "far"),
    ]
    kept, n = drop_composites(dets)
    assert n == 1 and [x for _, x in kept] == ["a", "b", "far"]


def test_a_box_holding_one_other_or_two_small_ones_is_kept():
    person, bag = (0, 0, 40, 100), (5, 40, 20, 60)
    assert composite_indices([person, bag]) == []
    assert composite_indices([person, bag, (25, 40, 38, 60)]) == []  # the parts' union is far smaller
    assert composite_indices([(0, 0, 40, 40), (0, 0, 20, 40), (20, 0, 40, 40)]) == [0]


def test_nested_group_boxes_drop_only_the_one_that_is_a_union():
    left, right = (0, 0, 20, 20), (22, 0, 42, 20)
    pair = (0, 0, 42, 20)
    wide = (0, 0, 90, 20)  # holds both but is twice their union: something else is in it
    assert composite_indices([pair, left, right, wide]) == [0]
