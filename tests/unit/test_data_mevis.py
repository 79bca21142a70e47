"""MeViS adapter: hand-made meta_expressions.json + mask_dict.json with multi-object unions and null frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stvg.data.errors import AnnotationError
from stvg.data.registry import load_samples

H, W = 12, 16


def rle(y0: int, y1: int, x0: int, x1: int) -> dict:
    m = np.zeros((H, W), dtype=np.uint8, order="F")
    m[y0:y1, x0:x1] = 1
    r = mask_utils.encode(m)
    return {"size": r["size"], "counts": r["counts"].decode()}


def decode(r: dict) -> np.ndarray:
    return mask_utils.decode(r).astype(bool)


@pytest.fixture
def mevis_split(tmp_path: Path) -> Path:
    split = tmp_path / "valid_u"
    split.mkdir()
    meta = {
        "videos": {
            "vidA": {
                "frames": ["00000", "00001", "00002", "00003"],
                "expressions": {
                    "0": {"exp": "the two cats fighting", "obj_id": [0, 1], "anno_id": [10, 11]},
                    "1": {"exp": "the cat on the left", "obj_id": [0], "anno_id": [10]},
                },
            }
        }
    }
    masks = {
        "10": [None, rle(0, 4, 0, 4), rle(0, 4, 1, 5), None],  # object 0 absent on frames 0 and 3
        "11": [None, rle(6, 10, 8, 12), None, None],  # object 1 only on frame 1
    }
    (split / "meta_expressions.json").write_text(json.dumps(meta))
    (split / "mask_dict.json").write_text(json.dumps(masks))
    return split


def test_multi_object_union_and_null_frames(mevis_split: Path) -> None:
    both, left = load_samples("mevis", mevis_split / "meta_expressions.json").samples
    assert both.sample_id == "vidA_0" and both.target_ids == (0, 1) and both.target_id is None
    assert sorted(both.gt_masks) == [1, 2]  # frames 0 and 3: all anno_ids null -> no GT
    union = decode(both.gt_masks[1])
    expected = decode(rle(0, 4, 0, 4)) | decode(rle(6, 10, 8, 12))
    np.testing.assert_array_equal(union, expected)
    assert both.gt_boxes[1] == (0.0, 0.0, 12.0, 10.0)  # tight box of the union, x2 one past
    assert both.gt_boxes[2] == (1.0, 0.0, 5.0, 4.0)
    assert both.gt_span_frames == (1, 2) and both.n_frames == 4 and (both.width, both.height) == (W, H)
    assert left.target_id == 0 and left.gt_boxes[1] == (0.0, 0.0, 4.0, 4.0)
    assert both.split == "valid_u" and both.video == "vidA" and both.gt_span_s is None


def test_fps_option_gives_times_and_folder_videos(mevis_split: Path) -> None:
    (mevis_split / "JPEGImages" / "vidA").mkdir(parents=True)
    both, _ = load_samples(
        "mevis", mevis_split / "meta_expressions.json", fps=2.0, video_root=mevis_split
    ).samples
    assert both.gt_span_s == (0.5, 1.5)
    assert both.video == str(mevis_split / "JPEGImages" / "vidA")


def test_unknown_anno_id_and_empty_expression(mevis_split: Path) -> None:
    meta = json.loads((mevis_split / "meta_expressions.json").read_text())
    meta["videos"]["vidA"]["expressions"]["2"] = {"exp": "ghost", "obj_id": [5], "anno_id": [99]}
    meta["videos"]["vidA"]["expressions"]["3"] = {"exp": " ", "obj_id": [0], "anno_id": [10]}
    (mevis_split / "meta_expressions.json").write_text(json.dumps(meta))
    with pytest.raises(AnnotationError, match="anno_id 99 is not in mask_dict") as info:
        load_samples("mevis", mevis_split / "meta_expressions.json")
    assert "'vidA_2'" in str(info.value)
    result = load_samples("mevis", mevis_split / "meta_expressions.json", skip_invalid=True)
    assert [i.sample_id for i in result.invalid] == ["vidA_2", "vidA_3"]
    assert len(result.samples) == 2


def test_valid_split_without_masks(tmp_path: Path) -> None:
    meta = {"videos": {"v": {"frames": ["00000"], "expressions": {"0": {"exp": "a dog"}}}}}
    (tmp_path / "meta_expressions.json").write_text(json.dumps(meta))
    (s,) = load_samples("mevis", tmp_path / "meta_expressions.json").samples
    assert s.gt_masks is None and s.target_ids == () and s.query == "a dog"
