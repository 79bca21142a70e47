"""``--protocol st-align`` against LLaVA-ST's ``eval_stvg`` (restated in tests/reference) on random
ST-Align ``stvg.json`` files through ``stvg score``, per entry, to 1e-9.

The GT end-points are rounded to 3 decimals before tIoU (LLaVA-ST does; a copy of the GT span can
score slightly under 1). Edge cases in the mix: splits shorter than 100 frames (repeated samples),
reversed and one-frame spans, spans past the split, boxes off the predicted span (they count),
exact copies, vIoU exactly 0.5; only the first 2,000 entries are scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stvg.data.registry import load_samples
from stvg.evaluation.metrics import get_protocol
from stvg.evaluation.score import Warnings, score, tube_submission_scores
from tests.protocols.conftest import TOL, random_box, write_json
from tests.reference import llava_st as ref

N_CASES = 230
KINDS = ("copy", "random", "reversed", "one_frame", "past_end", "off_span", "half", "short_split")


def _entry(i: int, split: list[int], span: tuple[int, int], boxes: dict[int, list[int]]) -> dict:
    return {
        "video_path": f"stvg/{7000000000 + i}.mp4",
        "meta": {
            "width": 160,
            "height": 120,
            "split": split,
            "time_token": {"<s>": span[0], "<e>": span[1]},
            "spatial_token": {"<bboxes>": {str(f): b for f, b in boxes.items()}},
        },
        "conversations": [{"from": "human", "value": '<video>\nWhen does "a cat jumps" happen?'}],
    }


def _case(rng: np.random.Generator, i: int, kind: str) -> tuple[dict, dict, tuple[float, float]]:
    s0 = int(rng.integers(0, 400))
    s1 = s0 + (int(rng.integers(2, 99)) if kind == "short_split" else int(rng.integers(99, 1500)))
    grid = sorted(set(ref.sampled_frames((s0, s1))))
    g0, g1 = sorted(int(v) for v in rng.choice(grid, 2))
    fixed = random_box(rng, height=2 * int(rng.integers(1, 20))) if kind == "half" else None
    gt_xywh = {f: list(fixed) if fixed else random_box(rng) for f in grid if g0 <= f <= g1}
    gt = {f: [x, y, x + w, y + h] for f, (x, y, w, h) in gt_xywh.items()}
    if kind in ("copy", "half"):
        p0, p1 = g0, g1
    elif kind == "one_frame":
        p0 = p1 = int(rng.choice(grid))
    else:
        p0, p1 = sorted(int(v) for v in rng.integers(s0, s1 + 1, 2))
        if kind == "past_end":
            p1 = s1 + int(rng.integers(1, 50))
        if kind == "reversed" and p1 > p0:
            p0, p1 = p1, p0
    frames = range(min(p0, p1), max(p0, p1) + 1)
    if kind == "off_span":
        frames = [*frames, *gt]
    pred = {}
    for f in frames:
        if kind == "copy":
            pred[f] = gt.get(f)
        elif kind == "half" and f in gt:
            x1, y1, x2, y2 = gt[f]
            pred[f] = [x1, y1, x2, y1 + (y2 - y1) // 2]
        elif f in gt and rng.random() < 0.7:
            pred[f] = [v + int(rng.integers(-4, 5)) for v in gt[f]]
            pred[f][2:] = [max(pred[f][0], pred[f][2]), max(pred[f][1], pred[f][3])]
        elif rng.random() < 0.5:
            x, y, w, h = random_box(rng)
            pred[f] = [x, y, x + w, y + h]
    pred = {f: b for f, b in pred.items() if b is not None}
    submission = {"st_frame": p0, "ed_frame": p1, "bbox": {str(f): b for f, b in pred.items()}}
    norm = ((p0 - s0) / (s1 - s0), (p1 - s0) / (s1 - s0))
    want = ref.entry_scores((s0, s1), (g0, g1), gt, norm, {f: b for f, b in pred.items() if s0 <= f <= s1})
    return _entry(i, [s0, s1], (g0, g1), gt_xywh), submission, want


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(23)
    entries, submission, refs, kinds = [], {}, {}, {}
    for i in range(N_CASES):
        entry, sub, want = _case(rng, i, KINDS[i % len(KINDS)])
        entries.append(entry)
        key = f"{7000000000 + i}_{i}"
        submission[key], refs[key], kinds[key] = sub, want, KINDS[i % len(KINDS)]
    root = tmp_path_factory.mktemp("st_align")
    return {
        "anno": write_json(root / "stvg.json", entries),
        "submission": submission,
        "sub_path": write_json(root / "sub.json", submission),
        "refs": refs,
        "kinds": kinds,
    }


def test_every_entry_agrees_with_llava_st(files: dict) -> None:
    samples = load_samples("st-align", files["anno"]).samples
    scored, scores = tube_submission_scores(
        "st-align", files["submission"], samples, get_protocol("st-align"), Warnings()
    )
    assert len(scored) == N_CASES
    for s, tiou, viou in zip(scored, scores.tiou, scores.viou, strict=True):
        want = files["refs"][s.sample_id]
        assert abs(tiou - want[0]) <= TOL and abs(viou - want[1]) <= TOL, (s.sample_id, (tiou, viou), want)
    out, _ = score("st-align", files["sub_path"], files["anno"])
    tious = [t for t, _ in files["refs"].values()]
    vious = [v for _, v in files["refs"].values()]
    assert abs(out["m_tIoU"] - float(np.mean(tious))) <= TOL
    assert abs(out["m_vIoU"] - float(np.mean(vious))) <= TOL
    assert out["vIoU@0.5"] == pytest.approx(float(np.mean([v >= 0.5 for v in vious])), abs=0)
    assert out["tIoU@0.5"] == pytest.approx(float(np.mean([t >= 0.5 for t in tious])), abs=0)


def test_gt_rounding_is_reproduced(files: dict) -> None:
    """Bug 9: a copy of the GT span scores the rounded tIoU, which is not always 1."""
    copies = [files["refs"][k] for k, kind in files["kinds"].items() if kind == "copy"]
    assert len(copies) >= 20
    assert any(t < 1.0 for t, _ in copies) and all(0.9 < t <= 1.0 for t, _ in copies)


def test_only_the_first_2000_entries_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    entries, submission = [], {}
    for i in range(ref.FIRST_ENTRIES + 5):
        entry, sub, _ = _case(rng, i, "copy" if i < ref.FIRST_ENTRIES else "random")
        entries.append(entry)
        submission[f"{7000000000 + i}_{i}"] = sub
    out, _ = score(
        "st-align", write_json(tmp_path / "sub.json", submission), write_json(tmp_path / "stvg.json", entries)
    )
    assert out["n"] == ref.FIRST_ENTRIES and out["m_vIoU"] == 1.0
