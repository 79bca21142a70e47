"""``stvg score`` on tiny hand-made annotation + submission files in each benchmark's own format."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stvg.evaluation.score import main, score


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture
def hcstvg(tmp_path: Path) -> Path:
    """Two 20-s videos at 1 fps (img_num 20): GT tubes on 1-based frames 5..9 and 1..10, 10x10 boxes."""

    def entry(st_frame: int, n: int) -> dict:
        return {
            "bbox": [[10, 10, 10, 10]] * n,  # xywh
            "st_time": (st_frame - 1) * 1.0,
            "ed_time": (st_frame - 1 + n) * 1.0,
            "img_num": 20,
            "st_frame": st_frame,
            "English": "the man walks",
            "img_size": [100, 100],
        }

    return write(tmp_path / "val_v2.json", {"a.mp4": entry(5, 5), "b.mkv": entry(1, 10)})


def perfect(st: int, ed: int) -> dict:
    return {"st_frame": st, "ed_frame": ed, "bbox": {str(f): [10, 10, 20, 20] for f in range(st, ed + 1)}}


def run(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_hcstvg_perfect_submission_scores_one(tmp_path: Path, hcstvg: Path, capsys) -> None:
    sub = write(tmp_path / "sub.json", {"a.mp4": perfect(5, 9), "b.mkv": perfect(1, 10)})
    out = run(capsys, "hcstvg-v2", str(sub), str(hcstvg))
    assert out["m_tIoU"] == out["m_vIoU"] == out["vIoU@0.3"] == out["vIoU@0.5"] == pytest.approx(1.0)
    assert out["n"] == 2 and out["n_warnings"] == 0


def test_hcstvg_frames_are_one_based(tmp_path: Path, hcstvg: Path) -> None:
    """A submission written with 0-based frames is shifted by one frame and loses one of five."""
    sub = write(tmp_path / "sub.json", {"a.mp4": perfect(4, 8), "b.mkv": perfect(1, 10)})
    out, _ = score("hcstvg-v2", sub, hcstvg)
    assert out["m_tIoU"] == pytest.approx((4 / 6 + 1.0) / 2)


def test_hcstvg_bad_entries_warn_naming_the_entry_and_score_zero(tmp_path: Path, hcstvg: Path) -> None:
    bad_box = perfect(5, 9)
    bad_box["bbox"]["6"] = [1, 2, 3]  # malformed
    del bad_box["bbox"]["7"]  # missing frame
    sub = write(
        tmp_path / "sub.json", {"a.mp4": bad_box, "zzz.mp4": perfect(1, 2), "b.mkv": {"st_frame": "x"}}
    )
    out, warnings = score("hcstvg-v2", sub, hcstvg)
    text = "\n".join(warnings.messages)
    assert "'zzz.mp4'" in text and "not in the annotation" in text
    assert "'a.mp4'" in text and "malformed" in text and "no box on" in text
    assert "'b.mkv'" in text and "integers" in text
    assert out["m_vIoU"] == pytest.approx((3 / 5) / 2)  # a.mp4: 3 of 5 frames; b.mkv: 0
    assert out["n"] == 2 and out["n_warnings"] == len(warnings) >= 4


def test_missing_video_and_reversed_span_are_counted(tmp_path: Path, hcstvg: Path) -> None:
    sub = write(tmp_path / "sub.json", {"a.mp4": {"st_frame": 9, "ed_frame": 5, "bbox": {}}})
    out, warnings = score("hcstvg-v2", sub, hcstvg)
    assert out["n_reversed"] == 1 and out["n_missing"] == 1 and out["m_vIoU"] == 0.0
    assert any("'b.mkv'" in m for m in warnings.messages)


def test_protocol_and_threshold_flags_change_the_numbers(tmp_path: Path, hcstvg: Path) -> None:
    half = perfect(5, 9)
    half["bbox"] = {str(f): [10, 10, 20, 15] for f in range(5, 10)}  # IoU 0.5 on every frame
    sub = write(tmp_path / "sub.json", {"a.mp4": half, "b.mkv": perfect(1, 10)})
    strict, _ = score("hcstvg-v2", sub, hcstvg)
    loose, _ = score("hcstvg-v2", sub, hcstvg, threshold_op=">=")
    assert strict["vIoU@0.5"] == 0.5 and loose["vIoU@0.5"] == 1.0
    r1, _ = score("hcstvg-v2", sub, hcstvg, protocol="stvg-r1")
    assert r1["protocol"] == "stvg-r1" and r1["m_vIoU"] < strict["m_vIoU"]  # GT boxes read one frame late


def test_unreadable_files_exit_2_with_a_message(tmp_path: Path, hcstvg: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["hcstvg-v2", str(bad), str(hcstvg)]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["hcstvg-v2", str(write(tmp_path / "list.json", [1])), str(hcstvg)]) == 2


def test_charades_spans_align_with_sentences(tmp_path: Path, capsys) -> None:
    anno = write(
        tmp_path / "charades_test.json",
        {
            "AAAAA": {"duration": 30.0, "timestamps": [[0.0, 10.0], [10.0, 20.0]], "sentences": ["a.", "b."]},
            "BBBBB": {"duration": 20.0, "timestamps": [[5.0, 25.0]], "sentences": ["c."]},
        },
    )
    sub = write(
        tmp_path / "sub.json", {"AAAAA": [[0.0, 10.0], [10.0, 15.0]], "BBBBB": [["x", 1]], "CCCCC": []}
    )
    out = run(capsys, "charades-sta", str(sub), str(anno))
    # AAAAA: 1.0 and 0.5; BBBBB: unparsable -> 0 (GT end 25 clipped to the 20-s video either way)
    assert out["mIoU"] == pytest.approx(1.5 / 3)
    assert out["R@0.5"] == pytest.approx(2 / 3) and out["R@0.7"] == pytest.approx(1 / 3)
    assert out["n"] == 3 and out["n_unparsable"] == 1 and out["n_warnings"] == 2


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()}


def test_mevis_folder_against_meta_and_mask_dict(tmp_path: Path, capsys) -> None:
    h, w = 24, 32
    obj1 = np.zeros((h, w), dtype=bool)
    obj1[2:8, 2:8] = True
    obj2 = np.zeros((h, w), dtype=bool)
    obj2[10:20, 10:20] = True
    frames = ["00000", "00001"]
    meta = {
        "videos": {
            "vid1": {
                "frames": frames,
                "expressions": {
                    "0": {"exp": "two things", "obj_id": [1, 2], "anno_id": [11, 12]},
                    "1": {"exp": "gone", "obj_id": [1], "anno_id": [13]},
                },
            }
        }
    }
    masks = {"11": [rle(obj1), None], "12": [rle(obj2), rle(obj2)], "13": [None, None]}
    anno = write(tmp_path / "meta_expressions.json", meta)
    write(tmp_path / "mask_dict.json", masks)
    sub = tmp_path / "sub"
    (sub / "vid1" / "0").mkdir(parents=True)
    (sub / "vid1" / "1").mkdir(parents=True)
    cv2.imwrite(str(sub / "vid1" / "0" / "00000.png"), ((obj1 | obj2) * 255).astype(np.uint8))  # union GT
    cv2.imwrite(str(sub / "vid1" / "0" / "00001.png"), (obj2 * 255).astype(np.uint8))
    cv2.imwrite(str(sub / "vid1" / "1" / "00000.png"), np.zeros((h, w), np.uint8))  # both empty -> 1
    # vid1/1/00001.png missing -> predicted empty, GT empty -> J = F = 1, with a warning
    out = run(capsys, "mevis", str(sub), str(anno))
    assert (
        out["J"] == pytest.approx(1.0) and out["F"] == pytest.approx(1.0) and out["J&F"] == pytest.approx(1.0)
    )
    assert out["n"] == 2 and out["n_warnings"] == 1
    cv2.imwrite(str(sub / "vid1" / "1" / "00001.png"), (obj1 * 255).astype(np.uint8))  # false positive
    out = run(capsys, "mevis", str(sub), str(anno))
    assert out["J"] == pytest.approx((1.0 + 0.5) / 2) and out["F"] == pytest.approx((1.0 + 0.5) / 2)


def test_vidstg_metrics_by_sentence_type(shared_data: Path, tmp_path: Path) -> None:
    """The real VidSTG val annotation file (spans only, no VidOR boxes): tIoU per sentence type."""
    from stvg.data.registry import load_samples

    anno = shared_data / "vidstg" / "val_annotations.json"
    samples = load_samples("vidstg", anno).samples
    if not samples or samples[0].gt_span_frames is None:
        pytest.skip("the VidSTG adapter yields no GT tubes without VidOR boxes")
    s = samples[0]
    sub = write(
        tmp_path / "sub.json",
        {s.sample_id: {"st_frame": s.gt_span_frames[0], "ed_frame": s.gt_span_frames[1], "bbox": {}}},
    )
    out, warnings = score("vidstg", sub, anno)
    assert set(out) >= {"all", "declarative", "interrogative"}
    assert out["all"]["n"] == len(samples)
    assert out[s.sentence_type]["m_tIoU"] > 0 and out["all"]["m_vIoU"] == 0.0
    assert any("no box on" in m for m in warnings.messages)


def test_charades_real_file_perfect_and_empty_submissions(shared_data: Path, tmp_path: Path) -> None:
    """The real Charades-STA test JSON (3,720 queries): clipped GT spans score 1, an empty file 0."""
    anno = shared_data / "charades_sta" / "charades_test.json"
    gt = json.loads(anno.read_text(encoding="utf-8"))
    clipped = {vid: [[a, min(b, v["duration"])] for a, b in v["timestamps"]] for vid, v in gt.items()}
    out, _ = score("charades-sta", write(tmp_path / "perfect.json", clipped), anno)
    assert out["n"] == 3720 and out["n_unparsable"] == 0
    assert out["R@0.7"] == pytest.approx(1.0) and out["mIoU"] == pytest.approx(1.0)
    raw = {vid: v["timestamps"] for vid, v in gt.items()}  # GT ends past the video are clipped, answers not
    out, _ = score("charades-sta", write(tmp_path / "raw.json", raw), anno)
    assert 0.9 < out["mIoU"] < 1.0
    empty, warnings = score("charades-sta", write(tmp_path / "empty.json", {}), anno)
    assert empty["mIoU"] == 0.0 and empty["n_unparsable"] == 3720 and len(warnings) == 1334
