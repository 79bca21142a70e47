"""``--protocol tubedetr`` against TubeDETR's evaluators (restated in tests/reference) on random
HC-STVG v2 and VidSTG (+ VidOR boxes) files through ``stvg score``, per sample, to 1e-9.

HC-STVG is sampled in the annotation's own numbering (TubeDETR reads the 1-based ``st_frame`` as a
frame index): a perfect one-frame tube at ``st_frame`` 6 scores 1. Edge cases in the mix: one-frame
tubes and predictions, holes, spans past the video end, reversed spans, long VidSTG segments
(200-frame cap), exact copies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stvg.data.registry import load_samples
from stvg.evaluation.metrics import get_protocol
from stvg.evaluation.score import Warnings, score, tube_submission_scores
from tests.protocols.conftest import TOL, hcstvg_entry, random_box, write_json
from tests.reference import tubedetr as ref

N_CASES = 220
KINDS = ("copy", "random", "holes", "past_end", "reversed", "one_frame", "missing")


def _span(rng: np.random.Generator, kind: str, gt: tuple[int, int], first: int, last: int) -> tuple[int, int]:
    """A predicted inclusive span in the numbering of ``gt``; the video's frames are first..last."""
    if kind == "copy":
        return gt
    if kind == "one_frame":
        f = gt[0] + int(rng.integers(-1, 2))
        return f, f
    lo, hi = sorted(int(v) for v in rng.integers(first, last + 1, 2))
    if kind == "past_end":
        hi = last + int(rng.integers(1, 20))
    return (hi, lo) if kind == "reversed" and hi > lo else (lo, hi)


def _boxes(rng: np.random.Generator, kind: str, span: tuple[int, int], gt_boxes: dict) -> dict[int, list]:
    frames = range(min(span), max(span) + 1)
    out = {}
    for f in frames:
        if kind == "holes" and rng.random() < 0.3:
            continue
        if f in gt_boxes and (kind == "copy" or rng.random() < 0.7):
            x1, y1, x2, y2 = gt_boxes[f]
            d = 0 if kind == "copy" else int(rng.integers(-5, 6))
            out[f] = [x1 + d, y1, x2 + d, y2]
        else:
            x, y, w, h = random_box(rng)
            out[f] = [x, y, x + w, y + h]
    return out


@pytest.fixture(scope="module")
def hcstvg(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """HC-STVG cases in TubeDETR's (= the annotation's 1-based) numbering."""
    rng = np.random.default_rng(5)
    annotation, submission, refs = {}, {}, {}
    for i in range(N_CASES):
        kind = KINDS[i % len(KINDS)]
        img_num = int(rng.integers(100, 601))  # 5..30 fps over 20 s
        length = 1 if kind == "one_frame" else int(rng.integers(1, 80))
        st = int(rng.integers(1, img_num - length + 2))
        entry = hcstvg_entry(rng, img_num, st, length)
        key = f"{i}_clip{i}.mp4"
        annotation[key] = entry
        gt_boxes = {st + k: [x, y, x + w, y + h] for k, (x, y, w, h) in enumerate(entry["bbox"])}
        frames = ref.sampled_frames(0, img_num - 1, img_num / 20)
        if kind == "missing":
            refs[key] = (0.0, 0.0)
            continue
        span = _span(rng, kind, (st, st + length - 1), 1, img_num)
        boxes = _boxes(rng, kind, span, gt_boxes)
        submission[key] = {
            "st_frame": span[0],
            "ed_frame": span[1],
            "bbox": {str(f): b for f, b in boxes.items()},
        }
        if span[1] < span[0]:
            refs[key] = (0.0, 0.0)  # a reversed sted: no overlap, nothing sampled in it
        else:
            refs[key] = ref.video_scores(frames, (st, st + length), gt_boxes, (span[0], span[1] + 1), boxes)
    root = tmp_path_factory.mktemp("tubedetr_hcstvg")
    return {
        "annotation": write_json(root / "val_v2.json", annotation),
        "submission": submission,
        "sub_path": write_json(root / "sub.json", submission),
        "refs": refs,
    }


def test_hcstvg_samples_agree_with_tubedetr(hcstvg: dict) -> None:
    samples = load_samples("hcstvg-v2", hcstvg["annotation"]).samples
    scored, scores = tube_submission_scores(
        "hcstvg-v2", hcstvg["submission"], samples, get_protocol("tubedetr"), Warnings()
    )
    for s, tiou, viou in zip(scored, scores.tiou, scores.viou, strict=True):
        want = hcstvg["refs"][s.video_id]
        assert abs(tiou - want[0]) <= TOL and abs(viou - want[1]) <= TOL, (s.video_id, (tiou, viou), want)
    out, _ = score("hcstvg-v2", hcstvg["sub_path"], hcstvg["annotation"], protocol="tubedetr")
    vious = [v for _, v in hcstvg["refs"].values()]
    assert abs(out["m_vIoU"] - float(np.mean(vious))) <= TOL
    assert out["vIoU@0.5"] == pytest.approx(float(np.mean([v > 0.5 for v in vious])), abs=0)


def test_a_perfect_one_frame_tube_at_st_frame_6_scores_one(tmp_path: Path) -> None:
    """Bug 3: at 30 fps TubeDETR samples frames 0, 6, 12, ... of its numbering, where the tube is."""
    entry = hcstvg_entry(np.random.default_rng(1), 600, 6, 1)
    anno = write_json(tmp_path / "val_v2.json", {"a.mp4": entry})
    x, y, w, h = entry["bbox"][0]
    sub = write_json(
        tmp_path / "sub.json", {"a.mp4": {"st_frame": 6, "ed_frame": 6, "bbox": {"6": [x, y, x + w, y + h]}}}
    )
    out, _ = score("hcstvg-v2", sub, anno, protocol="tubedetr")
    assert out["m_vIoU"] == 1.0 and out["m_tIoU"] == 1.0
    frames = ref.sampled_frames(0, 599, 30.0)
    assert ref.video_scores(frames, (6, 7), {6: [x, y, x + w, y + h]}, (6, 7), {6: [x, y, x + w, y + h]}) == (
        1.0,
        1.0,
    )


def _vidstg_case(rng: np.random.Generator, i: int, kind: str) -> tuple[dict, list, dict | None, tuple]:
    """(annotation entry, VidOR trajectories, submission entry or None, reference scores)."""
    fps = float(rng.choice([5.0, 15.0, 23.976, 24.0, 25.0, 29.97, 30.0]))
    n = int(rng.integers(30, 1500 if i % 5 == 0 else 300))  # some long enough for the 200 cap
    begin = int(rng.integers(0, n // 3))
    end = int(rng.integers(max(begin + 2, 2 * n // 3), n))  # used_segment end, inclusive in the file
    g0 = int(rng.integers(begin, end))
    g1 = g0 + 1 if kind == "one_frame" else int(rng.integers(g0 + 1, end + 2))  # temporal_gt, exclusive
    target = {f: random_box(rng) for f in range(g0, g1)}
    trajectories = []
    for f in range(n):
        objs = []
        if f in target:
            x, y, w, h = target[f]
            objs.append({"tid": 1, "bbox": {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}})
        trajectories.append(objs)
    entry = {
        "vid": f"9{i:05d}",
        "fps": fps,
        "frame_count": n,
        "width": 160,
        "height": 120,
        "used_segment": {"begin_fid": begin, "end_fid": end},
        "temporal_gt": {"begin_fid": g0, "end_fid": g1},
        "captions": [{"description": "a dog chases a ball.", "type": "object", "target_id": 1}],
        "questions": [],
    }
    gt_boxes = {f: [x, y, x + w, y + h] for f, (x, y, w, h) in target.items()}
    if kind == "missing":
        return entry, trajectories, None, (0.0, 0.0)
    span = _span(rng, kind, (g0, g1 - 1), begin, end)
    boxes = _boxes(rng, kind, span, gt_boxes)
    sub = {"st_frame": span[0], "ed_frame": span[1], "bbox": {str(f): b for f, b in boxes.items()}}
    if span[1] < span[0]:
        return entry, trajectories, sub, (0.0, 0.0)
    frames = ref.sampled_frames(begin, end, fps)
    return (
        entry,
        trajectories,
        sub,
        ref.video_scores(frames, (g0, g1), gt_boxes, (span[0], span[1] + 1), boxes),
    )


def test_vidstg_samples_agree_with_tubedetr(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    entries, submission, refs = [], {}, {}
    vidor = tmp_path / "vidor" / "0000"
    vidor.mkdir(parents=True)
    for i in range(N_CASES):
        kind = KINDS[i % len(KINDS)]
        entry, trajectories, sub, want = _vidstg_case(rng, i, kind)
        entries.append(entry)
        write_json(vidor / f"{entry['vid']}.json", {"video_id": entry["vid"], "trajectories": trajectories})
        key = f"{entry['vid']}_{i}_decl0"
        refs[key] = want
        if sub is not None:
            submission[key] = sub
    anno = write_json(tmp_path / "test_annotations.json", entries)
    samples = load_samples("vidstg", anno, vidor_root=tmp_path / "vidor").samples
    assert len(samples) == N_CASES
    scored, scores = tube_submission_scores(
        "vidstg", submission, samples, get_protocol("tubedetr"), Warnings()
    )
    for s, tiou, viou in zip(scored, scores.tiou, scores.viou, strict=True):
        want = refs[s.sample_id]
        assert abs(tiou - want[0]) <= TOL and abs(viou - want[1]) <= TOL, (s.sample_id, (tiou, viou), want)
    assert (
        sum(
            len(ref.sampled_frames(e["used_segment"]["begin_fid"], e["used_segment"]["end_fid"], e["fps"]))
            == 200
            for e in entries
        )
        > 0
    )
