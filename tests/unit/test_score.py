"""``stvg score`` on tiny hand-made annotation + submission files in each benchmark's own format."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stvg.evaluation.score import main, score
from tests.reference import llava_st


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def hcstvg_entry(st_frame: int, n: int) -> dict:
    """An HC-STVG v2 entry of a 20-frame, 1-fps video: 10x10 boxes on n 1-based frames from st_frame."""
    return {
        "bbox": [[10, 10, 10, 10]] * n,  # xywh
        "st_time": (st_frame - 1) * 1.0,
        "ed_time": (st_frame - 1 + n) * 1.0,
        "img_num": 20,
        "st_frame": st_frame,
        "English": "the man walks",
        "img_size": [100, 100],
    }


@pytest.fixture
def hcstvg(tmp_path: Path) -> Path:
    """Two 20-s videos at 1 fps (img_num 20): GT tubes on 1-based frames 5..9 and 1..10, 10x10 boxes."""
    return write(tmp_path / "val_v2.json", {"a.mp4": hcstvg_entry(5, 5), "b.mkv": hcstvg_entry(1, 10)})


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
    out, warnings = score("hcstvg-v2", sub, hcstvg, protocol="tubedetr")
    assert out["n_reversed"] == 1 and out["n_missing"] == 1 and out["m_vIoU"] == 0.0
    assert any("'b.mkv'" in m for m in warnings.messages)
    # the HC-STVG script scores a reversed entry's boxes as given (here: none)
    official, warnings = score("hcstvg-v2", sub, hcstvg)
    assert official["n_reversed"] == 0 and official["n_missing"] == 1 and official["m_vIoU"] == 0.0
    assert any("'a.mp4'" in m and "scored as given" in m for m in warnings.messages)


def test_protocol_and_threshold_flags_change_the_numbers(tmp_path: Path, hcstvg: Path) -> None:
    half = perfect(5, 9)
    half["bbox"] = {str(f): [10, 10, 20, 15] for f in range(5, 10)}  # IoU 0.5 on every frame
    sub = write(tmp_path / "sub.json", {"a.mp4": half, "b.mkv": perfect(1, 10)})
    strict, _ = score("hcstvg-v2", sub, hcstvg)
    loose, _ = score("hcstvg-v2", sub, hcstvg, threshold_op=">=")
    assert strict["vIoU@0.5"] == 0.5 and loose["vIoU@0.5"] == 1.0
    r1, _ = score("hcstvg-v2", sub, hcstvg, protocol="stvg-r1")
    assert r1["protocol"] == "stvg-r1" and r1["threshold_op"] == ">=" and r1["vIoU@0.5"] == 1.0


PROTOCOL_NAMES = ("official", "tubedetr", "stvg-r1", "st-align")


@pytest.fixture
def hcstvg3(tmp_path: Path) -> Path:
    """Three 20-frame videos at 1 fps: GT tubes on 1-based frames 5..9, 1..10 and 11..20 (the last frame)."""

    return write(
        tmp_path / "val3.json",
        {"a.mp4": hcstvg_entry(5, 5), "b.mkv": hcstvg_entry(1, 10), "c.mp4": hcstvg_entry(11, 10)},
    )


@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
def test_a_copy_of_the_gt_tubes_scores_one_under_every_protocol(
    tmp_path: Path, hcstvg3: Path, capsys, protocol: str
) -> None:
    """Through the CLI: the STVG-R1 preset used to compare the inclusive end frame / fps with GT seconds."""
    sub = write(
        tmp_path / "sub.json", {"a.mp4": perfect(5, 9), "b.mkv": perfect(1, 10), "c.mp4": perfect(11, 20)}
    )
    out = run(capsys, "hcstvg-v2", str(sub), str(hcstvg3), "--protocol", protocol)
    assert out["protocol"] == protocol and out["n"] == 3 and out["n_warnings"] == 0
    # ST-Align rounds the normalised GT end-points to 3 decimals (LLaVA-ST): a copy scores just under 1
    tiou = pytest.approx(COPY_TIOU_ST_ALIGN, abs=1e-12) if protocol == "st-align" else pytest.approx(1.0)
    assert out["m_tIoU"] == tiou and out["m_vIoU"] == pytest.approx(1.0)
    assert out["vIoU@0.5"] == 1.0
    exclusive = {k: {**v, "ed_frame": v["ed_frame"] + 1} for k, v in json.loads(sub.read_text()).items()}
    sub_x = write(tmp_path / "sub_x.json", exclusive)
    out = run(capsys, "hcstvg-v2", str(sub_x), str(hcstvg3), "--protocol", protocol, "--end-exclusive")
    assert out["m_tIoU"] == tiou and out["m_vIoU"] == pytest.approx(1.0)


# the three GT tubes of hcstvg3 on 0-based frames 4..8, 0..9, 10..19 of a 0..19 segment, as LLaVA-ST
COPY_TIOU_ST_ALIGN = (
    sum(
        llava_st.entry_scores((0, 19), g, {}, (g[0] / 19, g[1] / 19), {})[0]
        for g in ((4, 8), (0, 9), (10, 19))
    )
    / 3
)


def test_protocols_differ_where_reference_says(tmp_path: Path, hcstvg3: Path) -> None:
    """a: a one-frame overlap; b: the right span at box IoU 0.5; c: the last three frames of the video."""
    half = perfect(1, 10)
    half["bbox"] = {str(f): [10, 10, 20, 15] for f in range(1, 11)}
    sub = write(tmp_path / "sub.json", {"a.mp4": perfect(9, 12), "b.mkv": half, "c.mp4": perfect(18, 20)})
    got = {p: score("hcstvg-v2", sub, hcstvg3, protocol=p)[0] for p in PROTOCOL_NAMES}
    # official: frames, inclusive ends; a: S_i = {9}, S_u = 5..12 -> 1/8; c: 3 of 10; vIoU@R counts '>'
    off = got["official"]
    assert off["m_tIoU"] == pytest.approx((1 / 8 + 1 + 3 / 10) / 3)
    assert off["m_vIoU"] == pytest.approx((1 / 8 + 0.5 + 3 / 10) / 3)
    assert off["vIoU@0.3"] == pytest.approx(1 / 3) and off["vIoU@0.5"] == 0.0  # 0.3 and 0.5 are not > R
    # TubeDETR: HC-STVG frames sampled from range(0, n_frames - 1) in the annotation's 1-based
    # numbering, so 1-based frames 19 and 20 never count: c -> 1 of 8
    tub = got["tubedetr"]
    assert tub["m_tIoU"] == pytest.approx(off["m_tIoU"])
    assert tub["m_vIoU"] == pytest.approx((1 / 8 + 0.5 + 1 / 8) / 3)
    # STVG-R1: a one-frame overlap scores vIoU 0; thresholds >=; tIoU of the frame intervals
    r1 = got["stvg-r1"]
    assert r1["m_tIoU"] == pytest.approx(off["m_tIoU"])
    assert r1["m_vIoU"] == pytest.approx((0 + 0.5 + 3 / 10) / 3)
    assert r1["vIoU@0.3"] == pytest.approx(2 / 3) and r1["vIoU@0.5"] == pytest.approx(1 / 3)
    # ST-Align: tIoU on the end-points normalised to the 0..19 segment, GT rounded to 3 decimals
    # (a: 0, b: just under 1, c: about 2/9), vIoU as official here, >=
    sta = got["st-align"]
    spans = (((4, 8), (8, 11)), ((0, 9), (0, 9)), ((10, 19), (17, 19)))
    tious = [llava_st.entry_scores((0, 19), g, {}, (p[0] / 19, p[1] / 19), {})[0] for g, p in spans]
    assert sta["m_tIoU"] == pytest.approx(sum(tious) / 3, abs=1e-12)
    assert tious[1] < 1 and tious[2] == pytest.approx(2 / 9, abs=1e-3)
    assert sta["m_vIoU"] == pytest.approx(off["m_vIoU"])
    assert sta["vIoU@0.3"] == pytest.approx(2 / 3) and sta["tIoU@0.5"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
def test_box_keys_outside_the_span_or_video_warn_and_count_as_the_scripts_say(
    tmp_path: Path, hcstvg3: Path, protocol: str
) -> None:
    a = perfect(5, 9)
    a["bbox"].update({"100000000000": [10, 10, 20, 20], "1": [0, 0, 5, 5], "6.0": [10, 10, 20, 20]})
    b = perfect(1, 10)
    b["ed_frame"] = 22  # two frames past the video's 20
    b["bbox"]["21"] = [10, 10, 20, 20]
    c = {"st_frame": 11, "ed_frame": 10**30, "bbox": {"x": [1, 2, 3, 4]}}
    sub = write(tmp_path / "sub.json", {"a.mp4": a, "b.mkv": b, "c.mp4": c})
    out, warnings = score("hcstvg-v2", sub, hcstvg3, protocol=protocol)  # used to raise MemoryError
    text = "\n".join(warnings.messages)
    fate = "counted" if protocol in ("official", "st-align") else "ignored"  # eval_hcvg, LLaVA-ST count them
    assert "'a.mp4'" in text and "'100000000000'" in text and f"outside its frames 5..9 {fate}" in text
    assert "'1'" in text  # before st_frame
    assert "'6.0'" in text and "not an integer" in text
    assert "'b.mkv'" in text and "'21'" in text and "outside the video's frames 1..20 ignored" in text
    assert "'c.mp4'" in text and "'x'" in text
    # a scores as a copy of its GT tube (ST-Align: its box on frame 1 joins P, 5 of 6); b's union runs
    # to frame 22 (TubeDETR: the 18 sampled frames 1..18); ST-Align's union counts frames with a box,
    # so b's empty frames 11..22 do not enter it; c scores 0
    a_viou = 5 / 6 if protocol == "st-align" else 1.0
    b_viou = {"official": 10 / 22, "stvg-r1": 10 / 22, "tubedetr": 10 / 18, "st-align": 1.0}[protocol]
    assert out["m_vIoU"] == pytest.approx((a_viou + b_viou) / 3)
    assert out["n"] == 3 and out["n_warnings"] == len(warnings)


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
    (sub / "vid1" / "7").mkdir()
    (sub / "vid9").mkdir()
    again, warnings = score("mevis", sub, anno)
    assert again["J&F"] == out["J&F"]
    assert any("vid1/7" in m and "not an expression" in m for m in warnings.messages)
    assert any("'vid9'" in m and "not a video" in m for m in warnings.messages)


def vidstg_files(tmp_path: Path) -> tuple[Path, Path]:
    """A VidSTG annotation (GT frames 7..9, end_fid exclusive) and its VidOR trajectory file: tid 1 is
    the 10x20 box (f, 1, f + 10, 21) on every frame f, tid 2 a small box on frames < 5."""
    entry = {
        "vid": "1234",
        "fps": 25.0,
        "frame_count": 10,
        "width": 100,
        "height": 80,
        "used_segment": {"begin_fid": 0, "end_fid": 9},
        "temporal_gt": {"begin_fid": 7, "end_fid": 10},
        "captions": [{"description": "a dog chases a cat.", "type": "object", "target_id": 1}],
        "questions": [{"description": "what chases the cat?", "type": "object", "target_id": 1}],
    }
    frames = []
    for f in range(10):
        objs = [{"tid": 1, "bbox": {"xmin": f, "ymin": 1, "xmax": f + 10, "ymax": 21}, "generated": 0}]
        if f < 5:
            objs.append({"tid": 2, "bbox": {"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5}, "generated": 1})
        frames.append(objs)
    vidor = tmp_path / "vidor" / "0001"
    vidor.mkdir(parents=True)
    write(vidor / "1234.json", {"video_id": "1234", "width": 100, "height": 80, "trajectories": frames})
    return write(tmp_path / "val_annotations.json", [entry]), tmp_path / "vidor"


def test_vidstg_with_vidor_boxes_reports_each_sentence_type(tmp_path: Path, capsys) -> None:
    anno, vidor = vidstg_files(tmp_path)
    gt = {str(f): [f, 1, f + 10, 21] for f in range(7, 10)}
    shifted = {str(f): [f + 5, 1, f + 15, 21] for f in range(7, 10)}  # IoU 100 / 300 on every frame
    sub = write(
        tmp_path / "sub.json",
        {
            "1234_0_decl0": {"st_frame": 7, "ed_frame": 9, "bbox": gt},
            "1234_0_inter0": {"st_frame": 6, "ed_frame": 9, "bbox": {**shifted, "6": [6, 1, 16, 21]}},
        },
    )
    out = run(capsys, "vidstg", str(sub), str(anno), "--vidor-root", str(vidor))
    assert out["declarative"]["m_vIoU"] == pytest.approx(1.0) and out["declarative"]["m_tIoU"] == 1.0
    # interrogative: frames 6..9 against GT 7..9 -> tIoU 3/4, vIoU 3 * (1/3) / 4
    assert out["interrogative"]["m_tIoU"] == pytest.approx(3 / 4)
    assert out["interrogative"]["m_vIoU"] == pytest.approx(1 / 4, rel=1e-6)
    assert out["all"]["n"] == 2 and out["all"]["m_vIoU"] == pytest.approx((1 + 1 / 4) / 2, rel=1e-6)
    assert out["n_warnings"] == 0
    no_boxes, _ = score("vidstg", sub, anno)  # without --vidor-root the GT has no boxes
    assert no_boxes["all"]["m_vIoU"] == 0.0 and no_boxes["all"]["m_tIoU"] == out["all"]["m_tIoU"]


def st_align_file(tmp_path: Path) -> Path:
    """Two ST-Align STVG entries on a 199-frame split: GT frames 0..99 with a 10x10 box each."""

    def entry(video: str) -> dict:
        return {
            "video_path": f"stvg/{video}.mp4",
            "meta": {
                "width": 100,
                "height": 100,
                "split": [0, 198],
                "time_token": {"<s>": 0, "<e>": 99},
                "spatial_token": {"<bboxes>": {str(f): [0, 0, 10, 10] for f in range(100)}},
            },
            "conversations": [
                {"from": "human", "value": '<video>\nWhen and where can we see "a child holds a bat"?'},
                {"from": "gpt", "value": "..."},
            ],
        }

    return write(tmp_path / "stvg.json", [entry("8665030691"), entry("5555555555")])


def test_st_align_format_uses_its_own_protocol_and_frames(tmp_path: Path, capsys) -> None:
    anno = st_align_file(tmp_path)
    pred = {str(f): [0, 0, 10, 8] for f in range(50, 150)}  # IoU 0.8
    pred["400"] = [0, 0, 10, 8]  # outside the split: ignored with a warning
    sub = write(
        tmp_path / "sub.json",
        {
            "8665030691_0": {
                "st_frame": 0,
                "ed_frame": 99,
                "bbox": {str(f): [0, 0, 10, 10] for f in range(100)},
            },
            "5555555555_1": {"st_frame": 50, "ed_frame": 149, "bbox": pred},
        },
    )
    out = run(capsys, "st-align", str(sub), str(anno))
    assert out["protocol"] == "st-align" and out["threshold_op"] == ">=" and out["n"] == 2
    ids = np.round(np.arange(100) * 198 / 99).astype(int)  # the 100 uniformly sampled frames
    inter, union = ((ids >= 50) & (ids <= 99)).sum(), (ids <= 149).sum()
    assert out["m_vIoU"] == pytest.approx((1 + inter * 0.8 / union) / 2, rel=1e-6)
    assert out["m_tIoU"] == pytest.approx((1 + (99 - 50) / (149 - 0)) / 2)
    assert out["tIoU@0.5"] == 0.5 and out["n_warnings"] == 1
    official = run(capsys, "st-align", str(sub), str(anno), "--protocol", "official")
    assert official["m_vIoU"] == pytest.approx((1 + 50 * 0.8 / 150) / 2, rel=1e-6)


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
