"""Tube and moment metrics: REFERENCE 3.5 worked examples by hand, protocol variants, failure modes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stvg.evaluation.metrics import (
    PROTOCOLS,
    DenseBoxes,
    TubeInput,
    aggregate_by_group,
    aggregate_tubes,
    for_frame_submission,
    get_protocol,
    moment_metrics,
    pack_tubes,
    passes,
    plane_box_iou,
    read_frames,
    score_tube,
    score_tubes,
    seconds_to_frame,
    seconds_to_span,
    tubedetr_frame_ids,
    uniform_frame_ids,
)
from stvg.geometry import box_iou
from stvg.records import Sample
from tests.reference import hcstvg_challenge

GT_BOX = (0.0, 0.0, 10.0, 10.0)
PRED_BOX = (0.0, 0.0, 10.0, 8.0)  # IoU 0.8 with GT_BOX


def worked(pred_span=(150, 249), gt_span=(100, 199), **kw) -> TubeInput:
    """REFERENCE 3.5: 30 fps, GT 100..199, prediction 150..249, IoU 0.8 on every overlapping frame."""
    gt = {f: GT_BOX for f in range(gt_span[0], gt_span[1] + 1)}
    pred = {} if pred_span is None else {f: PRED_BOX for f in range(pred_span[0], pred_span[1] + 1)}
    return TubeInput(gt_span, gt, pred_span, pred, n_frames=kw.pop("n_frames", 600), fps=30.0, **kw)


def test_worked_example_official() -> None:
    s = score_tubes([worked()], PROTOCOLS["official"])[0]
    assert s.tiou == pytest.approx(50 / 150)
    assert s.viou == pytest.approx(50 * 0.8 / 150, rel=1e-6)
    assert s.failure is None


def test_worked_example_tubedetr_close_to_official() -> None:
    official = score_tubes([worked()], PROTOCOLS["official"])[0]
    tube = score_tubes([worked(dataset="vidstg")], PROTOCOLS["tubedetr"])[0]
    assert tube.tiou == pytest.approx(official.tiou)  # tIoU stays on raw frames
    # 5 of every 30 frames: frames 102,108,... -> 8 sampled in the overlap 150..199 ... of 25 in 100..249
    ids = np.array(tubedetr_frame_ids(0, 600, 30.0))
    inter = ((ids >= 150) & (ids <= 199)).sum()
    union = ((ids >= 100) & (ids <= 249)).sum()
    assert tube.viou == pytest.approx(inter * 0.8 / union, rel=1e-6)
    assert tube.viou != pytest.approx(official.viou, rel=1e-3)
    assert abs(tube.viou - official.viou) < 0.03  # "about the same value with quantisation noise"


def test_no_temporal_overlap_scores_zero_without_dividing_by_zero() -> None:
    s = score_tubes([worked(pred_span=(300, 399))])[0]
    assert (s.tiou, s.viou, s.failure) == (0.0, 0.0, None)


def test_missing_prediction_scores_zero_and_is_counted() -> None:
    scores = score_tubes([worked(), worked(pred_span=None)])
    assert scores[1].failure == "missing"
    agg = aggregate_tubes(scores)
    assert agg["n"] == 2 and agg["n_missing"] == 1
    assert agg["m_vIoU"] == pytest.approx(50 * 0.8 / 150 / 2, rel=1e-6)


@pytest.mark.parametrize("name", ["tubedetr", "stvg-r1"])
def test_reversed_span_scores_zero_and_is_counted(name: str) -> None:
    scores = score_tubes([worked(pred_span=(249, 150), dataset="vidstg")], PROTOCOLS[name])
    assert scores[0].failure == "reversed" and scores[0].viou == 0.0 and scores[0].tiou == 0.0
    assert aggregate_tubes(scores)["n_reversed"] == 1


def test_official_scores_a_reversed_frame_span_as_eval_hcvg_does() -> None:
    """|S_u| = max(ends) - min(starts) + 1 from the fields; S_i = GT frames with a submitted box."""
    it = replace(worked(), pred_span=(249, 150))  # boxes on 150..249, the fields reversed
    s = score_tubes([it], PROTOCOLS["official"])[0]
    assert s.failure is None
    # fields 249..150 against GT 100..199: max(199, 150) - min(100, 249) + 1 = 100 frames
    assert s.tiou == pytest.approx(50 / 100) and s.viou == pytest.approx(50 * 0.8 / 100)
    want = hcstvg_challenge.video_scores(
        {"st_frame": 100, "ed_frame": 199, "bbox": {str(f): list(GT_BOX) for f in range(100, 200)}},
        {"st_frame": 249, "ed_frame": 150, "bbox": {str(f): list(PRED_BOX) for f in range(150, 250)}},
    )
    assert (s.tiou, s.viou) == pytest.approx(want, abs=1e-12)
    reversed_answer = replace(it, pred_span_s=(8.3, 5.0))  # an answer in seconds is still a failure
    assert score_tubes([reversed_answer], PROTOCOLS["official"])[0].failure == "reversed"


def test_zero_length_union_in_seconds_is_a_counted_failure() -> None:
    it = worked(pred_span=(150, 150), gt_span=(150, 150), gt_span_s=(5.0, 5.0), pred_span_s=(5.0, 5.0))
    scores = score_tubes([it])
    assert scores[0].failure == "empty_union" and scores[0].viou == 0.0
    assert aggregate_tubes(scores)["n_empty_union"] == 1


def test_perfect_span_wrong_object_scores_near_zero() -> None:
    gt = {f: GT_BOX for f in range(100, 200)}
    wrong = {f: (50.0, 50.0, 60.0, 60.0) for f in range(100, 200)}
    s = score_tubes([TubeInput((100, 199), gt, (100, 199), wrong, n_frames=600, fps=30.0)])[0]
    assert s.tiou == 1.0 and s.viou == 0.0


def test_missing_predicted_box_inside_the_overlap_counts_zero() -> None:
    it = worked()
    pred = dict(it.pred_boxes)
    del pred[160]
    s = score_tubes([TubeInput(it.gt_span, it.gt_boxes, it.pred_span, pred, 600, 30.0)])[0]
    assert s.viou == pytest.approx(49 * 0.8 / 150, rel=1e-6)


def test_threshold_operator_differs_exactly_at_the_boundary() -> None:
    values = np.array([0.3, 0.5, 0.31])
    assert passes(values, 0.3, ">").tolist() == [False, True, True]
    assert passes(values, 0.3, ">=").tolist() == [True, True, True]
    # a sample whose vIoU is exactly 0.5: counted by >= only
    gt = {f: GT_BOX for f in range(10)}
    half = {f: (0.0, 0.0, 10.0, 5.0) for f in range(10)}
    scores = score_tubes([TubeInput((0, 9), gt, (0, 9), half, 100, 10.0)])
    assert aggregate_tubes(scores, get_protocol("official"))["vIoU@0.5"] == 0.0
    assert aggregate_tubes(scores, get_protocol("official", threshold_op=">="))["vIoU@0.5"] == 1.0


def test_end_exclusive_flag_shortens_the_predicted_span_by_one() -> None:
    inclusive = score_tubes([worked(pred_span=(100, 199))], get_protocol("official"))[0]
    exclusive = score_tubes([worked(pred_span=(100, 200))], get_protocol("official", end_inclusive=False))[0]
    assert inclusive.tiou == exclusive.tiou == 1.0
    assert inclusive.viou == pytest.approx(exclusive.viou)


def test_stvg_r1_one_frame_overlap_scores_zero_but_official_does_not() -> None:
    it = worked(pred_span=(199, 260))
    assert score_tubes([it], PROTOCOLS["official"])[0].viou > 0
    assert score_tubes([it], PROTOCOLS["stvg-r1"])[0].viou == 0.0


def test_stvg_r1_reads_gt_boxes_one_frame_late() -> None:
    """The 1-based st_frame slip: with a perfect prediction the first GT frame has no box."""
    gt = {f: GT_BOX for f in range(100, 200)}
    pred = dict(gt)
    it = TubeInput((100, 199), gt, (100, 199), pred, 600, 30.0)
    assert score_tubes([it], PROTOCOLS["official"])[0].viou == pytest.approx(1.0)
    assert score_tubes([it], PROTOCOLS["stvg-r1"])[0].viou == pytest.approx(99 / 100)


def test_stvg_r1_tiou_in_seconds_and_gt_frames_from_times() -> None:
    s = Sample(
        "s", "hcstvg-v2", "v.mp4", "q", fps=30.0, n_frames=600, width=64, height=64,
        gt_span_s=(3.34, 6.66), gt_span_frames=(101, 199),
        gt_boxes={f: GT_BOX for f in range(101, 200)},
    )  # fmt: skip
    boxes = {f: GT_BOX for f in range(600)}
    r1 = score_tube(s, (5.0, 10.0), boxes, PROTOCOLS["stvg-r1"])
    assert r1.tiou == pytest.approx((6.66 - 5.0) / (10.0 - 3.34))
    official = score_tube(s, (5.0, 10.0), boxes, PROTOCOLS["official"])
    # 10.0 s ends exactly on a frame boundary: the interval rule stops at frame 299, floor at 300
    assert official.tiou == pytest.approx((199 - 150 + 1) / (299 - 101 + 1))


def test_st_align_union_counts_frames_with_boxes_on_uniform_samples() -> None:
    gt = {f: GT_BOX for f in range(100)}
    pred = {f: PRED_BOX for f in range(50, 150)}
    it = TubeInput((0, 99), gt, (50, 149), pred, n_frames=199, fps=30.0, segment=(0, 198))
    s = score_tubes([it], PROTOCOLS["st-align"])[0]
    ids = np.array(uniform_frame_ids(0, 198))
    inter = ((ids >= 50) & (ids <= 99)).sum()
    union = ((ids >= 0) & (ids <= 149)).sum()
    assert s.viou == pytest.approx(inter * 0.8 / union, rel=1e-6)
    assert s.tiou == pytest.approx((99 - 50) / (149 - 0))  # end-points as continuous values


def test_tubedetr_sampling_rule_and_cap() -> None:
    assert tubedetr_frame_ids(0, 13, 10.0) == [0, 2, 4, 6, 8, 10, 12]
    ids = tubedetr_frame_ids(0, 3000, 25.0)
    assert len(ids) == 200 and ids[0] == 0 and ids == sorted(set(ids))
    assert uniform_frame_ids(0, 99) == list(range(100))
    assert uniform_frame_ids(10, 10) == [10]


def test_tubedetr_never_samples_the_last_hcstvg_frame() -> None:
    gt = {f: GT_BOX for f in range(90, 100)}
    last = {99: GT_BOX}  # the prediction overlaps the GT on the video's last frame only
    hcstvg = TubeInput((90, 99), gt, (99, 99), last, 100, 5.0, dataset="hcstvg-v2")
    other = TubeInput((90, 99), gt, (99, 99), last, 100, 5.0, dataset="charades-sta")
    assert 99 not in tubedetr_frame_ids(0, 99, 5.0)
    assert score_tubes([hcstvg], PROTOCOLS["official"])[0].viou == pytest.approx(1 / 10)
    assert score_tubes([hcstvg], PROTOCOLS["tubedetr"])[0].viou == 0.0
    assert score_tubes([other], PROTOCOLS["tubedetr"])[0].viou == pytest.approx(1 / 10)


def test_seconds_to_span_interval_rule_inverts_gt_times_and_int_rule_is_the_code() -> None:
    # a tube on frames 40..49 at 10 fps written as [4.0, 5.0) (HC-STVG / synthetic ed_time)
    assert seconds_to_span(4.0, 5.0, 10.0, 100) == (40, 49)
    assert seconds_to_span(4.0, 5.0, 10.0, 100, "int") == (40, 50)
    # the official int(t * fps): no clipping to the video, no tolerance, reversed kept as given
    assert seconds_to_span(8.0, 25.0, 10.0, 100, "int") == (80, 250)
    assert seconds_to_span(3 / 29.97, 1.0, 29.97, 100, "int")[0] == int(3 / 29.97 * 29.97)
    assert seconds_to_span(5.0, 4.0, 10.0, 100, "int") == (50, 40)
    assert seconds_to_span(8.9147, 17.5447, 30.0, 600) == (267, 526)  # REFERENCE's HC-STVG example
    assert seconds_to_span(4.0, 4.0, 10.0, 100) == (40, 40)  # a zero-length answer keeps one frame
    assert seconds_to_span(0.0, 99.0, 10.0, 100) == (0, 99)


def test_seconds_to_frame_round_trips_and_clips() -> None:
    assert seconds_to_frame(3 / 29.97, 29.97, 100) == 3
    assert seconds_to_frame(-1.0, 30.0, 100) == 0
    assert seconds_to_frame(100.0, 30.0, 100) == 99


def test_score_tube_policy_answer_maps_seconds_to_frames_and_reversed_answer_fails() -> None:
    s = Sample(
        "s", "synthetic", "v.mp4", "q", fps=10.0, n_frames=100, width=64, height=64,
        gt_span_s=(1.0, 2.0), gt_span_frames=(10, 19), gt_boxes={f: GT_BOX for f in range(10, 20)},
    )  # fmt: skip
    boxes = {f: GT_BOX for f in range(100)}
    assert score_tube(s, (1.05, 1.99), boxes).viou == pytest.approx(1.0)
    assert score_tube(s, (1.05, 2.09), boxes).viou == pytest.approx(10 / 11)  # floor(20.9) = 20
    assert score_tube(s, (1.2, 2.0), boxes).viou == pytest.approx(8 / 10)  # frames 12..19
    assert score_tube(s, (2.0, 1.0), boxes).failure == "reversed"
    assert score_tube(s, None, boxes).failure == "missing"
    assert score_tube(s, (float("nan"), 1.0), boxes).failure == "missing"


def test_vectorised_batch_matches_a_per_frame_loop() -> None:
    rng = np.random.default_rng(3)
    items, expected = [], []
    for _ in range(60):
        gs = int(rng.integers(0, 50))
        ge = gs + int(rng.integers(0, 40))
        ps = gs + int(rng.integers(-30, 30))
        pe = ps + int(rng.integers(0, 40))
        gt = {
            f: tuple(rng.uniform(0, 20, 2).tolist() + rng.uniform(25, 50, 2).tolist())
            for f in range(gs, ge + 1)
        }
        pr = {
            f: tuple(rng.uniform(0, 20, 2).tolist() + rng.uniform(25, 50, 2).tolist())
            for f in range(ps, pe + 1)
        }
        if rng.random() < 0.3:  # array-backed boxes take the same path
            arr = np.array([pr[f] for f in range(ps, pe + 1)])
            items.append(TubeInput((gs, ge), gt, (ps, pe), DenseBoxes(ps, arr), 200, 10.0))
        else:
            items.append(TubeInput((gs, ge), gt, (ps, pe), pr, 200, 10.0))
        num = sum(float(box_iou(gt[f], pr[f])) for f in range(max(gs, ps), min(ge, pe) + 1))
        expected.append(num / (max(ge, pe) - min(gs, ps) + 1))
    got = score_tubes(items).viou
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_sampled_protocols_match_a_per_frame_loop() -> None:
    """TubeDETR and ST-Align on random tubes (dict and array boxes, boxes outside the predicted span:
    TubeDETR reads boxes on the span only, ST-Align wherever they are)."""
    rng = np.random.default_rng(7)
    items, expected = [], {"tubedetr": [], "st-align": []}
    for k in range(80):
        n_frames = int(rng.integers(60, 300))
        gs = int(rng.integers(0, n_frames - 20))
        ge = min(gs + int(rng.integers(0, 60)), n_frames - 1)
        ps = int(rng.integers(0, n_frames - 1))
        pe = min(ps + int(rng.integers(0, 80)), n_frames - 1)
        seg = (int(rng.integers(0, gs + 1)), int(rng.integers(ge, n_frames)))
        rand_box = lambda: tuple(rng.uniform(0, 20, 2).tolist() + rng.uniform(25, 50, 2).tolist())  # noqa: E731
        gt = {f: rand_box() for f in range(gs, ge + 1)}
        pred = {
            f: rand_box() for f in range(max(ps - 5, 0), min(pe + 5, n_frames - 1) + 1) if rng.random() < 0.8
        }
        boxes = pred
        if k % 3 == 0:  # the same boxes as an array with NaN gaps
            lo, hi = min(pred), max(pred)
            arr = np.full((hi - lo + 1, 4), np.nan)
            for f, b in pred.items():
                arr[f - lo] = b
            boxes = DenseBoxes(lo, arr)
        items.append(TubeInput((gs, ge), gt, (ps, pe), boxes, n_frames, 25.0, segment=seg, dataset="vidstg"))
        iou = {f: float(box_iou(gt[f], pred[f])) for f in gt if f in pred and ps <= f <= pe}
        ids = tubedetr_frame_ids(seg[0], seg[1], 25.0)
        num = sum(iou.get(f, 0.0) for f in ids if max(gs, ps) <= f <= min(ge, pe))
        den = sum(min(gs, ps) <= f <= max(ge, pe) for f in ids)
        expected["tubedetr"].append(num / max(den, 1))
        ids = uniform_frame_ids(*seg)
        g = {f for f in ids if f in gt}
        p = {f for f in ids if f in pred}  # LLaVA-ST: every predicted box on a sampled frame
        every = {f: float(box_iou(gt[f], pred[f])) for f in g & p}
        expected["st-align"].append(sum(every.values()) / len(g | p) if g | p else 0.0)
    for name, want in expected.items():
        got = score_tubes(items, PROTOCOLS[name]).viou
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=name)


def test_boxes_keyed_far_outside_the_video_cost_nothing() -> None:
    """A box key of 1e11 and a span to 1e12 used to size the ST-Align window (MemoryError)."""
    gt = {f: GT_BOX for f in range(10, 20)}
    pred = {**{f: GT_BOX for f in range(10, 20)}, 10**11: GT_BOX, -(10**11): GT_BOX}
    for name in PROTOCOLS:
        protocol = for_frame_submission(PROTOCOLS[name])
        for span in ((10, 19), (10, 10**12)):
            it = TubeInput((10, 19), gt, span, pred, n_frames=50, fps=10.0, segment=(0, 49))
            batch = pack_tubes([it], protocol)
            assert batch.gt_boxes.shape[2] <= 50, name
            s = score_tubes([it], protocol)[0]
            assert (s.viou == pytest.approx(1.0)) == (span == (10, 19) or name == "st-align"), name


def test_frame_tubes_take_tiou_as_frame_intervals_under_stvg_r1() -> None:
    """A tube in frames has no times: its tIoU in 'seconds' compares [first, last + 1) on both sides."""
    gt = {f: GT_BOX for f in range(4, 9)}
    copy = TubeInput((4, 8), gt, (4, 8), dict(gt), 20, 1.0, gt_span_s=(4.0, 9.0))
    r1 = PROTOCOLS["stvg-r1"]
    assert score_tubes([copy], r1)[0].tiou == pytest.approx(1.0)  # was 4/5: end frame 8 read as 8 s
    assert score_tubes([copy], r1)[0].viou == pytest.approx(4 / 5)  # the GT-box slip of the seconds path
    assert score_tubes([copy], for_frame_submission(r1))[0].viou == pytest.approx(1.0)
    later = TubeInput((4, 8), gt, (6, 10), dict(gt), 20, 1.0, gt_span_s=(4.0, 9.0))
    assert score_tubes([later], for_frame_submission(r1))[0].tiou == pytest.approx(3 / 7)


def test_read_frames_are_the_scored_overlap_per_protocol() -> None:
    it = worked(dataset="vidstg")  # GT 100..199, prediction 150..249, 30 fps, 600 frames
    assert read_frames(it, PROTOCOLS["official"]).tolist() == list(range(150, 200))
    sampled = read_frames(it, PROTOCOLS["tubedetr"])
    assert sampled.tolist() == [f for f in tubedetr_frame_ids(0, 600, 30.0) if 150 <= f <= 199]
    assert read_frames(worked(pred_span=(199, 260)), PROTOCOLS["stvg-r1"]).size == 0  # one-frame overlap
    st = worked(segment=(0, 299))
    assert read_frames(st, PROTOCOLS["st-align"]).tolist() == [
        f for f in uniform_frame_ids(0, 299) if 150 <= f <= 249
    ]  # ST-Align counts predicted boxes on the whole predicted span
    assert read_frames(worked(pred_span=None), PROTOCOLS["official"]).size == 0


def test_plane_box_iou_matches_geometry_including_degenerate_and_missing_boxes() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (200, 4))
    b = rng.uniform(0, 50, (200, 4))  # many degenerate (x2 < x1) boxes
    b[:5] = np.nan
    expected = np.where(np.isnan(b[:, 0]), 0.0, box_iou(a, np.nan_to_num(b)))
    got = plane_box_iou(a.T.copy(), b.T.copy())
    np.testing.assert_array_equal(got, expected)  # the same float64 arithmetic, bit for bit


def test_a_box_iou_of_exactly_0_3_is_decided_in_float64() -> None:
    """Bug 7: six tubes at box IoU 0.3; in float32 the IoU is 0.3000000119 and every tube counted > 0.3."""
    gt_box, pred_box = (0.0, 0.0, 10.0, 10.0), (0.0, 0.0, 10.0, 3.0)
    items, gt_file, submission = [], {}, {}
    for n in range(1, 7):
        frames = range(10, 10 + n)
        items.append(
            TubeInput(
                (10, 9 + n),
                dict.fromkeys(frames, gt_box),
                (10, 9 + n),
                dict.fromkeys(frames, pred_box),
                50,
                5.0,
            )
        )
        gt_file[n] = {"st_frame": 10, "ed_frame": 9 + n, "bbox": {str(f): list(gt_box) for f in frames}}
        submission[n] = {"st_frame": 10, "ed_frame": 9 + n, "bbox": {str(f): list(pred_box) for f in frames}}
    got = aggregate_tubes(score_tubes(items, PROTOCOLS["official"]), PROTOCOLS["official"])
    want = hcstvg_challenge.evaluate(gt_file, submission)
    assert got["vIoU@0.3"] == want["vIoU@0.3"] and got["m_vIoU"] == pytest.approx(want["m_vIoU"], abs=1e-15)
    as32 = plane_box_iou(np.array(gt_box, np.float32)[:, None], np.array(pred_box, np.float32)[:, None])
    assert float(as32[0]) > 0.3 >= got["m_vIoU"]  # what the float32 kernel used to compare


def test_vidstg_groups_are_reported_separately() -> None:
    scores = score_tubes([worked(), worked(pred_span=None), worked(pred_span=(100, 199))])
    out = aggregate_by_group(scores, ["declarative", "interrogative", "declarative"])
    assert out["interrogative"]["n"] == 1 and out["interrogative"]["m_vIoU"] == 0.0
    assert out["declarative"]["m_tIoU"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert out["all"]["n"] == 3


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="official"):
        get_protocol("nope")


def test_charades_moment_metrics_count_unparsable_and_clip_to_duration() -> None:
    gt = [(0.0, 10.0), (0.0, 10.0), (0.0, 10.0), (20.0, 40.0)]
    pred = [(0.0, 10.0), (0.0, 5.0), None, (20.0, 30.0)]
    out = moment_metrics(pred, gt, durations=[30, 30, 30, 30.0])
    assert out["n"] == 4 and out["n_unparsable"] == 1
    assert out["mIoU"] == pytest.approx((1.0 + 0.5 + 0.0 + 1.0) / 4)  # GT end 40 clipped to 30
    assert out["R@0.5"] == pytest.approx(3 / 4)  # 0.5 counts with >=
    assert moment_metrics(pred, gt, threshold_op=">", durations=[30] * 4)["R@0.5"] == pytest.approx(2 / 4)
    assert moment_metrics([(5.0, 1.0)], [(0.0, 10.0)])["n_reversed"] == 1
    with pytest.raises(ValueError, match="align"):
        moment_metrics([(0.0, 1.0)], gt)
