"""``--protocol official`` against HC-STVG's own ``eval_hcvg.py`` (restated in tests/reference), on
random HC-STVG v2 files through ``stvg score``: per video and in aggregate, to 1e-9.

Edge cases in the mix: missing entries, exact copies, holes inside the submitted span (they leave
S_i, so tIoU drops), spans past either end of the video, reversed spans, boxes keyed outside the
submitted span on GT frames (counted), one-frame tubes, vIoU exactly 0.3 and 0.5 (``>`` excludes it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stvg.data.registry import load_samples
from stvg.evaluation.metrics import get_protocol
from stvg.evaluation.score import Warnings, score, tube_submission_scores
from tests.protocols.conftest import TOL, W, hcstvg_entry, random_box, write_json
from tests.reference import hcstvg_challenge as ref

N_CASES = 264
KINDS = (
    "missing",
    "copy",
    "random",
    "holes",
    "past_end",
    "before_start",
    "reversed",
    "iou_0.5",
    "iou_0.3",
    "one_frame",
    "off_span_boxes",
)


def _jitter(rng: np.random.Generator, xyxy: list[float]) -> list[float]:
    x1, y1, x2, y2 = (v + float(rng.integers(-6, 7)) for v in xyxy)
    return [x1, y1, max(x1, x2), max(y1, y2)]


def _case(rng: np.random.Generator, kind: str) -> tuple[dict, dict | None]:
    """(annotation entry, submission entry in the annotation's 1-based frames, or None)."""
    img_num = int(rng.integers(20, 121))
    length = 1 if kind == "one_frame" else int(rng.integers(1, min(img_num, 50) + 1))
    st = int(rng.integers(1, img_num - length + 2))
    fixed = None
    if kind == "iou_0.3":
        fixed = random_box(rng, height=10)  # a 3-px-high copy has IoU exactly 0.3
    elif kind == "iou_0.5":
        fixed = random_box(rng, height=2 * int(rng.integers(1, 20)))
    entry = hcstvg_entry(rng, img_num, st, length, fixed)
    gt = ref.gt_file({"v": entry})["v"]
    if kind == "missing":
        return entry, None
    if kind == "copy":
        return entry, {**gt, "bbox": dict(gt["bbox"])}
    if kind in ("iou_0.3", "iou_0.5"):
        keep = 0.3 if kind == "iou_0.3" else 0.5
        boxes = {k: [b[0], b[1], b[2], b[1] + (b[3] - b[1]) * keep] for k, b in gt["bbox"].items()}
        return entry, {**gt, "bbox": boxes}
    lo, hi = sorted(int(v) for v in rng.integers(1, img_num + 1, 2))
    if kind == "past_end":
        hi = img_num + int(rng.integers(1, 15))
    elif kind == "before_start":
        lo = -int(rng.integers(0, 10))
    elif kind == "one_frame":
        lo = hi = gt["st_frame"] + int(rng.integers(-1, 2))
    frames = range(lo, hi + 1)
    if kind == "holes":
        frames = [f for f in frames if rng.random() > 0.3]
    gt_box = {int(k): b for k, b in gt["bbox"].items()}
    boxes = {
        str(f): _jitter(rng, gt_box[f]) if f in gt_box and rng.random() < 0.8 else _xyxy(random_box(rng))
        for f in frames
    }
    if kind == "off_span_boxes":
        boxes.update({k: _jitter(rng, b) for k, b in gt["bbox"].items() if rng.random() < 0.5})
    st_frame, ed_frame = (hi, lo) if kind == "reversed" else (lo, hi)
    return entry, {"st_frame": st_frame, "ed_frame": ed_frame, "bbox": boxes}


def _xyxy(box: list[int]) -> list[float]:
    return [box[0], box[1], box[0] + box[2], box[1] + box[3]]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(14)
    root = tmp_path_factory.mktemp("hcstvg_official")
    annotation, submission, kinds = {}, {}, {}
    for i in range(N_CASES):
        kind = KINDS[i % len(KINDS)]
        entry, pred = _case(rng, kind)
        key = f"{i}_video{i}.mp4"
        annotation[key], kinds[key] = entry, kind
        if pred is not None:
            submission[key] = pred
    return {
        "annotation": annotation,
        "submission": submission,
        "kinds": kinds,
        "anno_path": write_json(root / "val_v2.json", annotation),
        "sub_path": write_json(root / "submission.json", submission),
    }


def test_every_video_agrees_with_eval_hcvg(files: dict) -> None:
    samples = load_samples("hcstvg-v2", files["anno_path"]).samples
    scored, scores = tube_submission_scores(
        "hcstvg-v2", files["submission"], samples, get_protocol("official"), Warnings()
    )
    gt = ref.gt_file(files["annotation"])
    assert len(scored) == N_CASES
    for s, tiou, viou in zip(scored, scores.tiou, scores.viou, strict=True):
        want_tiou, want_viou = ref.video_scores(gt[s.video_id], files["submission"].get(s.video_id))
        kind = files["kinds"][s.video_id]
        assert abs(tiou - want_tiou) <= TOL, (s.video_id, kind, tiou, want_tiou)
        assert abs(viou - want_viou) <= TOL, (s.video_id, kind, viou, want_viou)


def test_aggregates_through_stvg_score_agree(files: dict) -> None:
    out, _ = score("hcstvg-v2", files["sub_path"], files["anno_path"], protocol="official")
    want = ref.evaluate(ref.gt_file(files["annotation"]), files["submission"])
    for key, value in want.items():
        assert abs(out[key] - value) <= TOL, (key, out[key], value)


def test_the_edge_cases_are_really_in_the_mix(files: dict) -> None:
    """Each kind appears, and the ones whose point is a specific official outcome show it."""
    gt = ref.gt_file(files["annotation"])
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for key, kind in files["kinds"].items():
        by_kind.setdefault(kind, []).append(ref.video_scores(gt[key], files["submission"].get(key)))
    assert set(by_kind) == set(KINDS) and all(len(v) >= 20 for v in by_kind.values())
    assert all(v == pytest.approx(0.5, abs=0) for _, v in by_kind["iou_0.5"])  # exactly on R = 0.5
    assert all(abs(v - 0.3) < 1e-12 for _, v in by_kind["iou_0.3"])
    assert any(t > 0 for t, _ in by_kind["reversed"])  # eval_hcvg scores a reversed span's boxes
    holes = [key for key, kind in files["kinds"].items() if kind == "holes"]
    assert any(_hole_in_gt(gt[k], files["submission"][k]) for k in holes)


def _hole_in_gt(gt: dict, pred: dict) -> bool:
    lo, hi = max(gt["st_frame"], pred["st_frame"]), min(gt["ed_frame"], pred["ed_frame"])
    return any(str(f) not in pred["bbox"] for f in range(lo, hi + 1))


def test_a_hole_inside_the_span_lowers_tiou_as_eval_hcvg_does(tmp_path: Path) -> None:
    """Bug 6: the whole span used to count as S_i; a hole leaves it (and scores no IoU)."""
    rng = np.random.default_rng(0)
    entry = hcstvg_entry(rng, 40, 5, 10)
    gt = ref.gt_file({"a.mp4": entry})["a.mp4"]
    pred = {**gt, "bbox": {k: b for k, b in gt["bbox"].items() if k not in ("7", "8")}}
    anno = write_json(tmp_path / "val_v2.json", {"a.mp4": entry})
    sub = write_json(tmp_path / "sub.json", {"a.mp4": pred})
    out, _ = score("hcstvg-v2", sub, anno, protocol="official")
    assert out["m_tIoU"] == pytest.approx(8 / 10) and out["m_vIoU"] == pytest.approx(8 / 10)
    assert ref.video_scores(gt, pred) == pytest.approx((8 / 10, 8 / 10))
    assert W  # frame width used by the generator
