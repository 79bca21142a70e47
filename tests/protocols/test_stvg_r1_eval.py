"""``--protocol stvg-r1`` against the official STVG-R1 ``evaluate.py`` (restated in tests/reference):
random answers to random HC-STVG v2 videos with random tracked instances, scored through the
evaluate stage's own path (``evaluation.evaluate.score_answers``), per answer, to 1e-9.

The official vIoU always applies its ID-repair fallbacks: it is our ``repaired`` score; our strict
score is the same loop without them. Edge cases in the mix: answers past the end of the video
(those frames count in the union, unclipped), reversed and zero-length answers, answers on frame
boundaries (int(t * fps) differs from the interval rule), one-frame overlaps (vIoU 0), IDs absent
from the video or from parts of the overlap, frames with no instance at all, unparsable answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stvg.data.registry import load_samples
from stvg.evaluation.evaluate import score_answers
from stvg.evaluation.metrics import get_protocol
from stvg.training.answer import answer_parser
from tests.protocols.conftest import TOL, W, hcstvg_entry, write_json
from tests.reference import stvg_r1 as ref

N_CASES = 240
KINDS = ("random", "past_end", "boundary", "exact", "one_frame_overlap", "reversed", "absent_id", "garbage")


class Tracks:
    """A mask database of hand-made boxes (the evaluate stage's ``TrackSource``)."""

    def __init__(self) -> None:
        self.videos: dict[str, dict[int, dict[int, tuple[float, ...]]]] = {}
        self.frames: dict[str, int] = {}

    def has(self, video_id: str) -> bool:
        return video_id in self.videos

    def boxes_by_frame(self, video_id: str) -> dict[int, dict[int, tuple[float, ...]]]:
        return self.videos[video_id]

    def instance_ids(self, video_id: str) -> list[int]:
        return sorted({i for objs in self.videos[video_id].values() for i in objs})

    def summary(self, video_id: str) -> Mapping[str, Any]:
        return {"n_frames": self.frames[video_id], "tracked_frames": self.frames[video_id]}


def _masks(rng: np.random.Generator, n_frames: int, entry: dict) -> dict[int, dict[int, list[int]]]:
    """Instances 1..K on random runs of frames (last-pixel boxes, as rle_to_bbox writes them); instance
    1 follows the GT box roughly; some frames hold no instance at all."""
    st = entry["st_frame"]
    masks: dict[int, dict[int, list[int]]] = {f: {} for f in range(n_frames)}
    for instance in range(1, int(rng.integers(2, 6))):
        a, b = sorted(int(v) for v in rng.integers(0, n_frames, 2))
        x, y = int(rng.integers(0, W - 40)), int(rng.integers(0, 80))
        for f in range(a, b + 1):
            if rng.random() < 0.15:
                continue  # a gap in the track
            k = f - st
            if instance == 1 and 0 <= k < len(entry["bbox"]):
                gx, gy, gw, gh = entry["bbox"][k]
                box = [gx + int(rng.integers(-3, 4)), gy, gx + gw - 1, gy + gh - 1]
                box[2] = max(box[0], box[2])
            else:
                box = [x, y, x + int(rng.integers(0, 40)), y + int(rng.integers(0, 40))]
                x = min(max(x + int(rng.integers(-2, 3)), 0), W - 40)
            masks[f][instance] = box
    for f in rng.choice(n_frames, size=n_frames // 10, replace=False):
        masks[int(f)] = {}  # an empty mask file
    return masks


def _answer(rng: np.random.Generator, kind: str, entry: dict, fps: float, ids: list[int]) -> str:
    gs, ge = entry["st_time"], entry["ed_time"]
    target = int(rng.choice(ids)) if ids and kind != "absent_id" else 97
    if kind == "garbage":
        return str(
            rng.choice(
                ["", "no answer", "<answer>Target ID: 2</answer>", "<answer>Time range: 1 to 2</answer>"]
            )
        )
    if kind == "exact":
        s, e = gs, ge
    elif kind == "boundary":
        s, e = int(rng.integers(0, 400)) / fps, int(rng.integers(0, 400)) / fps
        s, e = min(s, e), max(s, e)
    elif kind == "past_end":
        s, e = float(rng.uniform(0, 20)), float(rng.uniform(20, 26))
    elif kind == "one_frame_overlap":
        s, e = (ge, ge + float(rng.uniform(0.5, 3))) if rng.random() < 0.5 else (max(gs - 2, 0.0), gs)
    elif kind == "reversed":
        s, e = sorted(rng.uniform(0, 20, 2))[::-1]
    else:
        s, e = sorted(rng.uniform(0, 20, 2))
    return f"<think>t</think><answer>Target ID: {target}, Time range: {s:.2f} to {e:.2f}</answer>"


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(2026)
    annotation, masks, texts, kinds = {}, {}, [], []
    db = Tracks()
    for i in range(N_CASES):
        kind = KINDS[i % len(KINDS)]
        img_num = int(rng.choice([100, 200, 250, 300, 480, 500, 600]))
        length = int(rng.integers(1, min(img_num, 200)))
        entry = hcstvg_entry(rng, img_num, int(rng.integers(1, img_num - length + 2)), length)
        key = f"{i}_r1video{i}.mp4"
        annotation[key] = entry
        masks[key] = _masks(rng, img_num, entry)
        db.videos[key] = {
            f: {i_: (b[0], b[1], b[2] + 1.0, b[3] + 1.0) for i_, b in objs.items()}  # mask_to_box: +1
            for f, objs in masks[key].items()
            if objs
        }
        db.frames[key] = img_num
        ids = sorted({i_ for objs in masks[key].values() for i_ in objs})
        texts.append(_answer(rng, kind, entry, img_num / 20, ids))
        kinds.append(kind)
    anno = write_json(tmp_path_factory.mktemp("stvg_r1") / "val_v2.json", annotation)
    samples = load_samples("hcstvg-v2", anno).samples
    scored = score_answers("policy", samples, texts, db, get_protocol("stvg-r1"), answer_parser("official"))
    return {
        "annotation": annotation,
        "masks": masks,
        "samples": samples,
        "texts": texts,
        "kinds": kinds,
        "scored": scored,
    }


def _reference(case: dict, i: int, fallbacks: bool) -> tuple[float, float] | None:
    sample = case["samples"][i]
    entry = case["annotation"][sample.video_id]
    text = case["texts"][i]
    pred_id, s, e = ref.parse(text)
    if pred_id is None:
        return 0.0, 0.0
    fps = entry["img_num"] / 20
    gt = (entry["st_time"], entry["ed_time"])
    try:
        tiou = ref.temporal_iou(gt, s, e)
    except ZeroDivisionError:
        return None  # the official loop drops the sample; we count 0
    masks = case["masks"][sample.video_id]
    return tiou, ref.spatial_iou(pred_id, (s, e), gt, fps, entry, masks, fallbacks=fallbacks)


def test_every_answer_agrees_with_the_official_evaluation(cases: dict) -> None:
    compared = 0
    for i, answer in enumerate(cases["scored"]):
        want = _reference(cases, i, fallbacks=True)
        if want is None:
            assert answer.tiou == answer.viou_repaired == 0.0
            continue
        compared += 1
        kind = cases["kinds"][i]
        assert abs(answer.tiou - want[0]) <= TOL, (i, kind, cases["texts"][i], answer.tiou, want)
        assert abs(answer.viou_repaired - want[1]) <= TOL, (
            i,
            kind,
            cases["texts"][i],
            answer.viou_repaired,
            want,
        )
    assert compared >= 200


def test_strict_scores_are_the_official_loop_without_fallbacks(cases: dict) -> None:
    for i, answer in enumerate(cases["scored"]):
        want = _reference(cases, i, fallbacks=False)
        if want is not None:
            assert abs(answer.viou - want[1]) <= TOL, (i, cases["kinds"][i], answer.viou, want)


def test_the_edge_cases_bite(cases: dict) -> None:
    """Past-the-end answers lose vIoU to the unclipped union; fallbacks really fill frames."""
    past = [a for a, k in zip(cases["scored"], cases["kinds"], strict=True) if k == "past_end"]
    assert len(past) >= 25
    assert sum(a.fallback_frames["largest"] + a.fallback_frames["nearest"] for a in cases["scored"]) > 100
    assert sum(a.fallback_frames["previous"] for a in cases["scored"]) > 100
    assert any(a.viou_repaired > a.viou for a in cases["scored"])


def test_an_answer_past_the_video_end_keeps_its_frames_in_the_union(tmp_path: Path) -> None:
    """Bug 4: GT 18-20 s, answer 18-25 s, right ID on every frame: 59 scored frames of a union of
    211 (frames 540..750 at 30 fps), not 59 of 60 (the answer clipped to the video)."""
    entry = hcstvg_entry(np.random.default_rng(4), 600, 541, 60, fixed=[10, 10, 20, 30])
    entry.update(st_time=18.0, ed_time=20.0)
    anno = write_json(tmp_path / "val_v2.json", {"a.mp4": entry})
    samples = load_samples("hcstvg-v2", anno).samples
    db = Tracks()
    db.videos["a.mp4"] = {f: {1: (10.0, 10.0, 31.0, 41.0)} for f in range(600)}  # mask_to_box
    db.frames["a.mp4"] = 600
    text = "<answer>Target ID: 1, Time range: 18.00 to 25.00</answer>"
    (answer,) = score_answers("p", samples, [text], db, get_protocol("stvg-r1"), answer_parser("official"))
    masks = {f: {1: [10, 10, 30, 40]} for f in range(600)}  # the GT box exactly
    want = ref.spatial_iou(1, (18.0, 25.0), (18.0, 20.0), 30.0, entry, masks)
    assert want == pytest.approx(59 / 211) and answer.viou == pytest.approx(want, abs=TOL)
