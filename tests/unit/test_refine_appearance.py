"""Box -> mask refinement (GrabCut), colour appearance features, and the appearance gates they feed:
the tracker's association veto and the repair step's merge veto."""

from __future__ import annotations

import numpy as np
import pytest

from stvg.geometry import box_iou, mask_to_box
from stvg.prompting.backends.synthetic_cpu.colour import (
    FEATURE_DIM,
    ColourSimilarity,
    appearance_distance,
    colour_feature,
    medoid_feature,
)
from stvg.prompting.backends.synthetic_cpu.grabcut import refine_box, refine_detections
from stvg.prompting.identity import MergeRules, Observation, merge_fragments
from stvg.records import Detection

RED, BLUE = (205, 35, 35), (40, 75, 205)


def background(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(200, 6, size=(h, w, 3)), 0, 255).astype(np.uint8)


def square(img: np.ndarray, x: int, y: int, size: int, colour: tuple[int, int, int]) -> tuple[int, ...]:
    img[y : y + size, x : x + size] = colour
    return (x, y, x + size, y + size)


def disc(img: np.ndarray, cx: int, cy: int, r: int, colour: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    img[m] = colour
    return m


def det(box, score: float = 0.9) -> Detection:
    return Detection(frame=0, box=tuple(float(v) for v in box), score=score)


# ----------------------------------------------------------------------------------------------- refine


def test_a_loose_box_is_tightened_to_the_object():
    img = background()
    exact = square(img, 50, 40, 30, RED)
    loose = (47.0, 38.0, 82.0, 73.0)  # ~2 px too big on every side: box IoU ~0.78
    mask = refine_box(img[..., ::-1], loose)
    assert mask is not None
    assert mask_to_box(mask) == tuple(float(v) for v in exact)


def test_a_large_box_is_segmented_downscaled_and_still_fits():
    img = background(360, 480)
    exact = square(img, 100, 60, 240, BLUE)  # ROI ~290 x 290 px, segmented at ~96 x 96
    mask = refine_box(img[..., ::-1], (96.0, 55.0, 345.0, 306.0))
    assert mask is not None and mask.shape == img.shape[:2]
    assert float(box_iou(mask_to_box(mask), exact)) > 0.97


def test_a_disc_gets_a_round_mask_not_its_box():
    img = background()
    truth = disc(img, 80, 60, 15, BLUE)
    mask = refine_box(img[..., ::-1], (64.0, 44.0, 97.0, 77.0))
    assert mask is not None
    inter, union = (mask & truth).sum(), (mask | truth).sum()
    assert inter / union > 0.95
    assert mask.sum() < 0.85 * 33 * 33  # a filled box would cover 33 x 33


def test_refinement_that_finds_nothing_keeps_the_detector_box():
    img = background()  # no object at all inside the box
    out, n = refine_detections(img, [(det((40, 40, 80, 80)), None)])
    assert n == 0
    ((d, mask),) = out
    assert d.box == (40.0, 40.0, 80.0, 80.0)
    assert mask_to_box(mask) == (40.0, 40.0, 80.0, 80.0)  # the filled box


def test_two_boxes_on_one_object_become_one_detection():
    img = background()
    square(img, 50, 40, 30, RED)
    dets = [(det((49, 39, 81, 71), 0.9), None), (det((51, 41, 82, 72), 0.6), None)]
    out, n = refine_detections(img, dets)
    assert n == 2 and len(out) == 1
    assert out[0][0].score == 0.9


def test_masks_from_a_segmentation_model_are_kept_as_they_are():
    img = background()
    given = np.zeros(img.shape[:2], dtype=bool)
    given[10:20, 10:20] = True
    out, n = refine_detections(img, [(det((10, 10, 20, 20)), given)])
    assert n == 0 and out[0][1] is not None and np.array_equal(out[0][1], given)


def test_another_detection_inside_the_box_stays_out_of_the_mask():
    img = background()
    red = square(img, 30, 40, 30, RED)
    blue = square(img, 60, 35, 40, BLUE)  # touching on the right; the spanning box's centre is blue
    spanning = (30, 35, 100, 75)
    out, _ = refine_detections(img, [(det(spanning, 0.8), None), (det(red, 0.7), None)])
    boxes = sorted(mask_to_box(m) for _, m in out)
    assert tuple(float(v) for v in red) in boxes
    # the spanning box settles on the object at its centre without swallowing the red one
    assert max(float(box_iou(b, blue)) for b in boxes) > 0.95
    # without the other detection it cannot tell the two apart
    ((alone, _),) = refine_detections(img, [(det(spanning, 0.8), None)])[0]
    assert float(box_iou(alone.box, spanning)) > 0.9


# ----------------------------------------------------------------------------------------------- appearance


def test_colour_features_separate_colours_and_match_the_same_colour():
    img = background()
    a = np.zeros(img.shape[:2], dtype=bool)
    b, c = a.copy(), a.copy()
    a[10:40, 10:40] = b[60:90, 100:130] = c[60:90, 10:40] = True
    img[a] = RED
    img[b] = RED
    img[c] = BLUE
    fa, fb, fc = (colour_feature(img, m) for m in (a, b, c))
    assert fa is not None and fa.shape == (FEATURE_DIM,)
    assert np.isclose(np.linalg.norm(fa), 1.0, atol=1e-5)
    assert appearance_distance(fa, fb) < 0.05
    assert appearance_distance(fa, fc) > 0.9
    assert colour_feature(img, np.zeros_like(a)) is None
    assert appearance_distance(None, fa) == 0.0  # unknown appearance never vetoes
    m = medoid_feature([fa, None, fc, fb])  # two reds and one blue: a red
    assert m is not None and appearance_distance(m, fa) < 0.05
    assert medoid_feature([None]) is None


def test_merge_is_vetoed_when_the_fragments_look_different():
    red_f = np.eye(1, FEATURE_DIM, 0, dtype=np.float32)[0]
    blue_f = np.eye(1, FEATURE_DIM, 5, dtype=np.float32)[0]

    def track(frames: range, feature: np.ndarray) -> dict[int, Observation]:
        return {
            f: Observation(box=(2.0 * f, 10, 2.0 * f + 20, 30), area=400, score=0.9, feature=feature)
            for f in frames
        }

    same = {1: track(range(10), red_f), 2: track(range(12, 20), red_f)}
    differ = {1: track(range(10), red_f), 2: track(range(12, 20), blue_f)}
    merged, log, _ = merge_fragments(same, MergeRules(5, 0.3), ColourSimilarity(0.5))
    assert len(merged) == 1 and log[0]["kind"] == "merge"
    kept, log, _ = merge_fragments(differ, MergeRules(5, 0.3), ColourSimilarity(0.5))
    assert len(kept) == 2 and log == []
    # without the gate, motion alone joins them
    assert len(merge_fragments(differ, MergeRules(5, 0.3))[0]) == 1


# ----------------------------------------------------------------------------------------------- tracker


@pytest.mark.parametrize(("gate", "same_id"), [(0.5, False), (0.0, True)])
def test_botsort_never_hands_a_track_to_a_differently_coloured_detection(gate: float, same_id: bool):
    from stvg.prompting.backends.synthetic_cpu.tracker import DetectionTracker

    tracker = DetectionTracker("botsort", class_aware=True, appearance_gate=gate)
    img = background()
    red_feat = colour_feature(img * 0 + np.array(RED, dtype=np.uint8), np.ones(img.shape[:2], bool))
    blue_feat = colour_feature(img * 0 + np.array(BLUE, dtype=np.uint8), np.ones(img.shape[:2], bool))
    ids = []
    for t in range(6):
        x = 20 + 2 * t
        feature = red_feat if t < 4 else blue_feat  # the same place, another object from frame 4 on
        d = Detection(frame=t, box=(x, 30.0, x + 30.0, 60.0), score=0.9)
        masks, _, _ = tracker.update(t, img, [(d, None)], np.stack([feature]))
        ids.append(next(iter(masks), None))
    confirmed = [i for i in ids[1:4] if i is not None]
    assert len(set(confirmed)) == 1
    assert (ids[5] == confirmed[0]) is same_id


# ----------------------------------------------------------------------------------------------- coverage


def test_identity_coverage_counts_the_matched_id_over_visible_frames():
    import pandas as pd

    from stvg.evaluation.prompt_quality import identity_coverage

    t, h, w = 10, 40, 60
    visible = np.zeros((2, t, h, w), dtype=bool)
    visible[0, :, 5:25, 5:25] = True  # instance 0: always visible
    visible[1, :, 5:25, 35:55] = True
    visible[1, 8:, 5:25, 35:54] = False  # instance 1: a 1-px sliver on its last 2 frames (not counted)
    visible[1, 8:, 5:25, 54] = True
    rows = []
    for f in range(t):
        rows.append((f, 1 if f < 7 else 3, 5, 5, 25, 25))  # instance 0: ID 1, then a new ID 3 from frame 7
        if f < 8:
            rows.append((f, 2, 35, 5, 55, 25))
    table = pd.DataFrame(rows, columns=["frame", "instance_id", "x1", "y1", "x2", "y2"])
    cov = identity_coverage(table, visible)
    assert cov == pytest.approx([0.7, 1.0])
    assert identity_coverage(table.iloc[:0], visible) == [0.0, 0.0]
    from stvg.evaluation.prompt_quality import missed_frames

    assert missed_frames(table, visible) == [[7, 8, 9], []]  # ID 3's frames: not the matched ID's


def test_identity_coverage_matches_instances_and_ids_one_to_one():
    """IDF1-style: a better-overlapping box of another ID does not take a frame from the matched ID,
    and one ID cannot cover two instances."""
    import pandas as pd

    from stvg.evaluation.prompt_quality import identity_coverage, missed_frames

    t, h, w = 10, 40, 80
    visible = np.zeros((2, t, h, w), dtype=bool)
    visible[0, :, 5:25, 5:25] = True
    visible[1, :, 5:25, 30:50] = True
    rows = []
    for f in range(t):
        rows.append((f, 1, 6, 5, 25, 25))  # ID 1 on instance 0 (IoU 0.95)
        rows.append((f, 2, 30, 5, 50, 25))  # ID 2 on instance 1
        if f in (3, 4):
            rows.append((f, 7, 5, 5, 25, 25))  # a box matching instance 0 better, for 2 frames
    table = pd.DataFrame(rows, columns=["frame", "instance_id", "x1", "y1", "x2", "y2"])
    assert identity_coverage(table, visible) == pytest.approx([1.0, 1.0])
    # one ID holding both instances' boxes (two boxes a frame, say a duplicate): only one instance gets it
    shared = table[table.instance_id != 7].replace({"instance_id": {2: 1}})
    assert sorted(identity_coverage(shared, visible)) == pytest.approx([0.0, 1.0])
    assert sorted(len(m) for m in missed_frames(shared, visible)) == [0, t]


def test_identity_coverage_with_frames_skips_frames_where_the_outline_does_not_show():
    import pandas as pd

    from stvg.evaluation.prompt_quality import counted_frames, identity_coverage

    t, h, w = 10, 40, 60
    purple = (130, 50, 170)
    frames = np.full((t, h, w, 3), 200, dtype=np.uint8)
    visible = np.zeros((1, t, h, w), dtype=bool)
    visible[0, :, 10:20, 10:20] = True
    frames[:, 10:20, 10:20] = purple
    frames[:3, 5:30, 5:30] = purple  # frames 0-2: it lies on a larger shape of its own colour
    rows = [(f, 1, 10, 10, 20, 20) for f in range(3, t)]  # no tracker could place it there
    table = pd.DataFrame(rows, columns=["frame", "instance_id", "x1", "y1", "x2", "y2"])
    assert counted_frames(visible[0], frames) == list(range(3, t))
    assert identity_coverage(table, visible, frames) == pytest.approx([1.0])
    assert identity_coverage(table, visible) == pytest.approx([0.7])  # strict: every visible frame


def test_outline_visibility_sees_no_edge_between_shapes_of_one_colour():
    from stvg.evaluation.prompt_quality import outline_visibility

    purple, red = (130, 50, 170), (205, 35, 35)
    img = np.full((40, 60, 3), 200, dtype=np.uint8)
    small = np.zeros((40, 60), dtype=bool)
    small[10:20, 10:20] = True
    img[small] = purple
    assert outline_visibility(img, small) == pytest.approx(1.0)  # alone on the background
    img[5:30, 5:30] = purple  # now lies on a larger shape of its own colour: no outline shows
    assert outline_visibility(img, small) == 0.0
    img[5:30, 5:30] = red
    img[small] = purple  # on a shape of another colour: the whole outline shows again
    assert outline_visibility(img, small) == pytest.approx(1.0)
    img[:, :] = 200
    img[10:20, 10:30] = purple  # half of it over a same-coloured neighbour to its right
    assert 0.5 < outline_visibility(img, small) < 1.0
