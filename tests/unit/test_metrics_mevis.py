"""MeViS J / F on small hand-drawn masks, including every empty-mask rule."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stvg.evaluation.mevis import (
    aggregate_jf,
    boundary_f,
    boundary_radius,
    decode_union,
    disk,
    expression_scores,
    region_similarity,
    seg2bmap,
)


def square(h: int, w: int, y0: int, x0: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def test_radius_matches_the_reference_table() -> None:
    assert [boundary_radius(h, w) for h, w in ((360, 640), (480, 854), (720, 1280), (1080, 1920))] == [
        6,
        8,
        12,
        18,
    ]
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def test_seg2bmap_marks_the_one_pixel_boundary() -> None:
    m = square(6, 6, 1, 1, 3)
    b = seg2bmap(m)
    # a pixel is a boundary where it differs from its right, lower or lower-right neighbour:
    # the square's right/bottom rim and the outside pixels just above/left of it (DAVIS seg2bmap)
    assert not b[1, 1] and not b[2, 2] and b[3, 3] and b[1, 3] and b[0, 0] and b[0, 2]
    assert not b[5, 5] and not b[0, 5]
    assert not seg2bmap(np.zeros((5, 5), dtype=bool)).any()


def test_region_similarity_by_hand_and_both_empty_is_one() -> None:
    a = square(10, 10, 0, 0, 4)  # 16 px
    b = square(10, 10, 0, 2, 4)  # overlap 8, union 24
    assert region_similarity(a, b) == pytest.approx(8 / 24)
    empty = np.zeros((10, 10), dtype=bool)
    assert region_similarity(empty, empty) == 1.0
    assert region_similarity(a, empty) == 0.0


def test_boundary_f_identical_is_one_and_empty_rules() -> None:
    a = square(40, 40, 10, 10, 12)
    empty = np.zeros_like(a)
    assert boundary_f(a, a) == 1.0
    assert boundary_f(empty, empty) == 1.0  # both empty
    assert boundary_f(empty, a) == 0.0  # prediction empty, GT not
    assert boundary_f(a, empty) == 0.0  # GT empty, prediction not


def test_boundary_f_tolerance_is_the_disk_radius() -> None:
    h, w = 100, 100  # radius ceil(0.008 * 141.4) = 2 px
    gt = square(h, w, 30, 30, 30)
    near = square(h, w, 30, 32, 30)  # shifted by 2 px: every boundary pixel within tolerance
    far = square(h, w, 30, 40, 30)  # shifted by 10 px: only the top/bottom edges overlap partly
    assert boundary_radius(h, w) == 2
    assert boundary_f(near, gt) == pytest.approx(1.0)
    assert boundary_f(far, gt) < 0.8


def test_expression_means_over_all_frames_and_dataset_aggregate() -> None:
    gt = np.stack([square(20, 20, 2, 2, 6), np.zeros((20, 20), dtype=bool)])
    pred = np.stack([square(20, 20, 2, 2, 6), square(20, 20, 10, 10, 3)])  # frame 2: false positive
    j, f = expression_scores(pred, gt)
    assert j == pytest.approx(0.5) and f == pytest.approx(0.5)
    out = aggregate_jf([(j, f), (1.0, 1.0)])
    assert out == {"n": 2, "J": 0.75, "F": 0.75, "J&F": 0.75}


def test_decode_union_of_several_objects_and_absent_ones() -> None:
    a, b = square(8, 8, 0, 0, 3), square(8, 8, 4, 4, 3)
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in (a, b)]
    rles = [{"size": r["size"], "counts": r["counts"].decode()} for r in rles]
    assert np.array_equal(decode_union([rles[0], None, rles[1]], 8, 8), a | b)
    assert not decode_union([None, None], 8, 8).any()
