"""VidSTG adapter: real val counts, exclusive end_fid, boxes from hand-made VidOR trajectory files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.data.errors import AnnotationError
from stvg.data.registry import dataset_stats, load_samples


def entry(vid: str = "1234", **over: object) -> dict:
    e = {
        "vid": vid,
        "fps": 25.0,
        "frame_count": 10,
        "width": 100,
        "height": 80,
        "used_segment": {"begin_fid": 0, "end_fid": 9},
        "temporal_gt": {"begin_fid": 7, "end_fid": 10},  # exclusive end = frame_count
        "captions": [{"description": "a dog chases a cat.", "type": "object", "target_id": 1}],
        "questions": [{"description": "what chases the cat?", "type": "object", "target_id": 1}],
    }
    e.update(over)
    return e


def vidor(path: Path, n_frames: int = 10) -> None:
    """A VidOR annotation: tid 1 on every frame, tid 2 only on frames < 5."""
    frames = []
    for f in range(n_frames):
        objs = [{"tid": 1, "bbox": {"xmin": f, "ymin": 1, "xmax": f + 10, "ymax": 21}, "generated": 0}]
        if f < 5:
            objs.append({"tid": 2, "bbox": {"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5}, "generated": 1})
        frames.append(objs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"video_id": path.stem, "width": 100, "height": 80, "trajectories": frames}))


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_real_val_counts(shared_data: Path) -> None:
    stats = dataset_stats("vidstg", shared_data / "vidstg" / "val_annotations.json")
    assert stats == {
        "samples": 8956,
        "videos": 602,
        "invalid": 0,
        "invalid_entries": [],
        "declarative": 3996,
        "interrogative": 4960,
    }


def test_real_demo_entry(shared_data: Path) -> None:
    samples = load_samples("vidstg", shared_data / "vidstg" / "val_annotations.json").samples
    (s,) = [
        x
        for x in samples
        if x.video_id == "8665030691" and x.query == "a child wearing a red hat holds a bat."
    ]
    assert s.sentence_type == "declarative"
    assert s.gt_span_frames == (0, 776)  # temporal_gt end_fid 777 is exclusive
    assert s.clip_frames == (0, 829) and s.target_ids == (0,) and s.n_frames == 830
    assert len({x.sample_id for x in samples}) == len(samples)


def test_exclusive_end_and_vidor_boxes(tmp_path: Path) -> None:
    anno = write(tmp_path / "val_annotations.json", [entry()])
    vidor(tmp_path / "vidor" / "0001" / "1234.json")
    decl, inter = load_samples("vidstg", anno, vidor_root=tmp_path / "vidor").samples
    assert decl.sentence_type == "declarative" and inter.sentence_type == "interrogative"
    assert decl.sample_id == "1234_0_decl0" and inter.sample_id == "1234_0_inter0"
    assert decl.gt_span_frames == (7, 9)
    assert decl.gt_span_s == pytest.approx((7 / 25, 10 / 25))
    assert sorted(decl.gt_boxes) == [7, 8, 9]
    assert decl.gt_boxes[9] == (9.0, 1.0, 19.0, 21.0)
    assert decl.target_id == 1 and decl.split == "val" and decl.video == "1234.mp4"


def test_without_vidor_spans_but_no_boxes(tmp_path: Path) -> None:
    anno = write(tmp_path / "val_annotations.json", [entry()])
    samples = load_samples("vidstg", anno).samples
    assert len(samples) == 2 and all(s.gt_boxes == {} and s.gt_span_frames == (7, 9) for s in samples)


def test_target_absent_on_gt_frames_is_reported(tmp_path: Path) -> None:
    e = entry(captions=[{"description": "the small box.", "type": "object", "target_id": 2}], questions=[])
    anno = write(tmp_path / "val_annotations.json", [e])
    vidor(tmp_path / "vidor" / "1234.json")
    with pytest.raises(AnnotationError, match="no VidOR box on GT frames 7..9") as info:
        load_samples("vidstg", anno, vidor_root=tmp_path / "vidor")
    assert "1234_0_decl0" in str(info.value)


def test_missing_trajectory_file_and_video(tmp_path: Path) -> None:
    anno = write(tmp_path / "val_annotations.json", [entry()])
    (tmp_path / "vidor").mkdir()
    result = load_samples("vidstg", anno, vidor_root=tmp_path / "vidor", skip_invalid=True)
    assert not result.samples and "no VidOR trajectory file 1234.json" in result.invalid[0].reason
    (tmp_path / "videos").mkdir()
    with pytest.raises(AnnotationError, match="video file not found"):
        load_samples("vidstg", anno, video_root=tmp_path / "videos")
    (tmp_path / "videos" / "0001").mkdir()
    (tmp_path / "videos" / "0001" / "1234.mp4").write_bytes(b"x")
    assert (
        load_samples("vidstg", anno, video_root=tmp_path / "videos")
        .samples[0]
        .video.endswith("0001/1234.mp4")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temporal_gt": {"begin_fid": 8, "end_fid": 8}}, "end before start"),
        ({"temporal_gt": {"begin_fid": 2, "end_fid": 11}}, "outside the video's 10 frames"),
        ({"captions": [{"description": "", "target_id": 1}]}, "empty captions"),
    ],
)
def test_bad_entries(tmp_path: Path, change: dict, message: str) -> None:
    anno = write(tmp_path / "val_annotations.json", [entry("1"), entry("2", **change)])
    with pytest.raises(AnnotationError, match=message) as info:
        load_samples("vidstg", anno)
    assert str(anno) in str(info.value) and "'2_1" in str(info.value)
    result = load_samples("vidstg", anno, skip_invalid=True)
    assert {s.video_id for s in result.samples} >= {"1"} and result.invalid[0].sample_id.startswith("2_1")


def test_box_outside_the_frame(tmp_path: Path) -> None:
    anno = write(tmp_path / "val_annotations.json", [entry(width=15)])
    vidor(tmp_path / "vidor" / "1234.json")
    with pytest.raises(AnnotationError, match="outside the 15x80 frame"):
        load_samples("vidstg", anno, vidor_root=tmp_path / "vidor")
    samples = load_samples("vidstg", anno, vidor_root=tmp_path / "vidor", clip_boxes=True).samples
    assert samples[0].gt_boxes[9] == (9.0, 1.0, 15.0, 21.0)
