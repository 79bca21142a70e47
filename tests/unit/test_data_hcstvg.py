"""HC-STVG v1/v2 and synthetic adapters: conventions on hand-made official-format files, real query file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stvg.data import hcstvg
from stvg.data.errors import AnnotationError
from stvg.data.registry import load_samples
from stvg.data.tubes import BoxTube

V1_ENTRY = {  # the README example: 600 frames / 20 s = 30 fps, 1-based st_frame 268
    "bbox": [[259, 77, 146, 283], [260, 78, 146, 282], [262, 78, 145, 282]],
    "st_time": 8.9147,
    "ed_time": 17.5447,
    "img_num": 600,
    "caption": "The man in the suit turns and walks to the window.",
    "width": 640,
    "height": 360,
    "st_frame": 268,
}


def v2_entry(**over: object) -> dict:
    entry = {k: v for k, v in V1_ENTRY.items() if k not in ("caption", "width", "height")}
    entry.update(English="The woman in red sits down.", img_size=[360, 640])
    entry.update(over)
    return entry


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_v1_st_frame_is_one_based_and_boxes_become_xyxy(tmp_path: Path) -> None:
    path = write(tmp_path / "test.json", {"55_vfjywN5CN0Y.mp4": V1_ENTRY})
    (s,) = load_samples("hcstvg-v1", path).samples
    assert s.gt_span_frames == (267, 269)
    assert s.gt_boxes[267] == (259.0, 77.0, 405.0, 360.0)
    assert s.gt_boxes[269] == (262.0, 78.0, 407.0, 360.0)
    assert 266 not in s.gt_boxes and 270 not in s.gt_boxes
    assert s.fps == 30.0 and s.n_frames == 600 and s.duration_s == 20.0
    assert (s.width, s.height) == (640, 360)
    assert s.gt_span_s == (8.9147, 17.5447)
    assert s.sample_id == "55_vfjywN5CN0Y" and s.video_id == "55_vfjywN5CN0Y.mp4"
    assert s.video == "55_vfjywN5CN0Y.mp4" and s.dataset == "hcstvg-v1" and s.split == "test"
    assert s.query == V1_ENTRY["caption"]


def test_v2_reads_img_size_height_first_and_english(tmp_path: Path) -> None:
    path = write(tmp_path / "val_v2.json", {"3_5MxjqHfkWFI.mkv": v2_entry(img_size=[480, 854])})
    (s,) = load_samples("hcstvg-v2", path).samples
    assert (s.width, s.height) == (854, 480)
    assert s.query == "The woman in red sits down."
    assert s.split == "val" and s.dataset == "hcstvg-v2"


def test_fps_extension_overrides_the_20_second_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "val_v2.json", {"a.mp4": v2_entry(fps=10.0, img_num=300)})
    (s,) = load_samples("hcstvg-v2", path).samples
    assert s.fps == 10.0 and s.duration_s == 30.0


def test_v2_layout_video_found_in_part_subfolder(tmp_path: Path) -> None:
    root = tmp_path / "video_parts"
    (root / "7").mkdir(parents=True)
    (root / "7" / "a.mp4").write_bytes(b"x")
    path = write(tmp_path / "val_v2.json", {"a.mp4": v2_entry()})
    (s,) = load_samples("hcstvg-v2", path, video_root=root).samples
    assert s.video == str(root / "7" / "a.mp4")


def test_query_file_loads_without_span(tmp_path: Path) -> None:
    path = write(tmp_path / "query_v2.json", {"a.mp4": "A man waves.", "b.mkv": "A dog runs."})
    samples = load_samples("hcstvg-v2", path).samples
    assert [s.sample_id for s in samples] == ["a", "b"]
    assert all(s.gt_span_s is None and not s.gt_boxes for s in samples)


def test_real_query_file_has_2931_queries(shared_data: Path) -> None:
    samples = load_samples("hcstvg-v2", shared_data / "hcstvg_v2" / "query_v2.json").samples
    assert len(samples) == 2931
    assert len({s.sample_id for s in samples}) == 2931
    assert any(s.video_id.endswith(".mkv") for s in samples)


def test_synthetic_reads_masks_beside_the_annotation(tmp_path: Path) -> None:
    rle = {"size": [360, 640], "counts": "abc"}
    write(tmp_path / "val_v2.json", {"a.mp4": v2_entry(fps=30.0)})
    write(tmp_path / "masks_val.json", {"a.mp4": {"267": rle, "268": rle}})
    (s,) = load_samples("synthetic", tmp_path / "val_v2.json").samples
    assert s.dataset == "synthetic"
    assert s.gt_masks == {267: rle, 268: rle}
    (plain,) = load_samples("hcstvg-v2", tmp_path / "val_v2.json").samples
    assert plain.gt_masks is None


def test_clip_boxes_option_clips_instead_of_rejecting(tmp_path: Path) -> None:
    path = write(tmp_path / "val_v2.json", {"a.mp4": v2_entry(bbox=[[600, 10, 100, 50]])})
    with pytest.raises(AnnotationError, match="outside the 640x360 frame"):
        load_samples("hcstvg-v2", path)
    (s,) = load_samples("hcstvg-v2", path, clip_boxes=True).samples
    assert s.gt_boxes[267] == (600.0, 10.0, 640.0, 60.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ed_time": 1.0}, "end before start"),
        ({"bbox": [[10, 10, 0, 5]]}, "degenerate box"),
        ({"bbox": [[-5, 10, 20, 20]]}, "outside the 640x360 frame"),
        ({"English": "  "}, "empty query"),
        ({"st_frame": 0}, "1-based"),
        ({"st_frame": 599}, "run past img_num"),
        ({"bbox": []}, "bbox is empty"),
        ({"bbox": [[1, 2, 3]]}, r"\[x, y, w, h\]"),
    ],
)
def test_bad_samples_name_file_and_sample(tmp_path: Path, change: dict, message: str) -> None:
    path = write(tmp_path / "val_v2.json", {"good.mp4": v2_entry(), "bad.mp4": v2_entry(**change)})
    with pytest.raises(AnnotationError, match=message) as info:
        load_samples("hcstvg-v2", path)
    assert str(path) in str(info.value) and "'bad'" in str(info.value)
    assert "data.skip_invalid: true" in str(info.value)
    result = load_samples("hcstvg-v2", path, skip_invalid=True)
    assert [s.sample_id for s in result.samples] == ["good"]
    assert [(i.sample_id, i.file) for i in result.invalid] == [("bad", str(path))]


def test_missing_field_and_missing_video(tmp_path: Path) -> None:
    entry = v2_entry()
    del entry["st_frame"]
    path = write(tmp_path / "val_v2.json", {"a.mp4": entry})
    with pytest.raises(AnnotationError, match="missing field.*st_frame"):
        load_samples("hcstvg-v2", path)
    path = write(tmp_path / "val_v2.json", {"a.mp4": v2_entry()})
    (tmp_path / "videos").mkdir()
    with pytest.raises(AnnotationError, match="video file not found") as info:
        load_samples("hcstvg-v2", path, video_root=tmp_path / "videos")
    assert "'a'" in str(info.value)


def _big_file(path: Path, n: int, rng: np.random.Generator) -> dict:
    anno = {}
    for i in range(n):
        k = int(rng.integers(1, 40))
        xy = rng.integers(0, 200, size=(k, 2))
        wh = rng.integers(1, 100, size=(k, 2))
        anno[f"v{i}.mp4"] = v2_entry(
            bbox=np.concatenate([xy, wh], 1).tolist(), st_frame=int(rng.integers(1, 400))
        )
    anno["float.mp4"] = v2_entry(bbox=[[1.5, 2.25, 3e1, 4.0], [0.0, 0.5, 10.125, 1e-3]])
    path.write_text(json.dumps(anno))
    return anno


def test_fast_and_exact_paths_give_identical_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train_v2.json"
    anno = _big_file(path, 300, np.random.default_rng(0))
    monkeypatch.setattr(hcstvg, "FAST_PATH_MIN_BYTES", 0)
    fast = load_samples("hcstvg-v2", path).samples
    monkeypatch.setattr(hcstvg, "FAST_PATH_MIN_BYTES", 1 << 62)
    exact = load_samples("hcstvg-v2", path).samples
    assert fast == exact and len(fast) == len(anno)
    for s in fast:
        xywh = np.asarray(anno[s.video_id]["bbox"], dtype=float)
        assert isinstance(s.gt_boxes, BoxTube)
        np.testing.assert_array_equal(s.gt_boxes.boxes[:, :2], xywh[:, :2])
        np.testing.assert_array_equal(s.gt_boxes.boxes[:, 2:], xywh[:, :2] + xywh[:, 2:])


def test_fast_path_rejects_the_same_bad_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train_v2.json"
    anno = _big_file(path, 50, np.random.default_rng(1))
    anno["v7.mp4"]["bbox"][0] = [700, 0, 10, 10]
    path.write_text(json.dumps(anno))
    monkeypatch.setattr(hcstvg, "FAST_PATH_MIN_BYTES", 0)
    result = load_samples("hcstvg-v2", path, skip_invalid=True)
    assert [i.sample_id for i in result.invalid] == ["v7"]
    assert len(result.samples) == len(anno) - 1
    survivors = {s.video_id: s for s in result.samples}
    xywh = np.asarray(anno["v8.mp4"]["bbox"], dtype=float)
    np.testing.assert_array_equal(survivors["v8.mp4"].gt_boxes.boxes[:, :2], xywh[:, :2])
