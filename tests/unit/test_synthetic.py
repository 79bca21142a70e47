"""The synthetic benchmark: determinism, exact GT, HC-STVG v2 conventions, decodable videos, features."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stvg.config import ParamsError, SyntheticParams, params_from_dict
from stvg.data.synthetic import (
    SHAPE_CLASSES,
    SyntheticGenerationError,
    build_video,
    generate_benchmark,
    render_detector_frames,
)
from stvg.data.synthetic_language import ground
from stvg.data.synthetic_scene import COLORS, sample_scene
from stvg.geometry import mask_to_box

SMALL = SyntheticParams(n_train=2, n_val=1, duration_s=5.0)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticParams, dict]:
    """A benchmark at the default resolution and length (fewer videos), generated once for this module."""
    p = SyntheticParams(n_train=12, n_val=4)
    out = tmp_path_factory.mktemp("synthetic") / "synthetic"
    summary = generate_benchmark(p, out, progress=False)
    return out, p, summary


def _load(out: Path, name: str) -> dict:
    return json.loads((out / "anno_v2" / name).read_text())


def _digests(root: Path) -> dict[str, str]:
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


# ----------------------------------------------------------------------------------------------- determinism


def test_same_params_give_byte_identical_files(tmp_path: Path) -> None:
    generate_benchmark(SMALL, tmp_path / "a", progress=False)
    generate_benchmark(SMALL, tmp_path / "b", progress=False)
    generate_benchmark(dataclasses.replace(SMALL, seed=1), tmp_path / "c", progress=False)
    a, b, c = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert len(a) == SMALL.n_train + SMALL.n_val + 6 + 1  # videos, annotation files, summary
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith((".mp4", "_v2.json")))  # the seed matters


def test_a_video_does_not_depend_on_the_split_size() -> None:
    small = build_video(SMALL, "val", 1)
    large = build_video(dataclasses.replace(SMALL, n_val=7), "val", 1)
    assert small.sentence == large.sentence
    assert np.array_equal(small.frames, large.frames)


def test_failure_leaves_no_output(tmp_path: Path) -> None:
    impossible = dataclasses.replace(SMALL, min_visible_px=10**6, max_attempts=2)
    with pytest.raises(SyntheticGenerationError, match="synthetic train video 0.*max_attempts"):
        generate_benchmark(impossible, tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------- GT


def test_layout_and_summary(bench: tuple[Path, SyntheticParams, dict]) -> None:
    out, p, summary = bench
    train, val = _load(out, "train_v2.json"), _load(out, "val_v2.json")
    assert (len(train), len(val)) == (p.n_train, p.n_val)
    assert not set(train) & set(val)
    videos = {f.name for f in (out / "video_parts" / "0").iterdir()}
    assert videos == set(train) | set(val)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["counts"]["val"]["videos"] == p.n_val
    assert on_disk["params"]["seed"] == p.seed
    assert summary["seconds"] > 0 and "seconds" not in on_disk


def test_boxes_are_tight_boxes_of_the_target_masks(bench: tuple[Path, SyntheticParams, dict]) -> None:
    out, p, _ = bench
    for split in ("train", "val"):
        anno, masks = _load(out, f"{split}_v2.json"), _load(out, f"masks_{split}.json")
        instances = _load(out, f"instances_{split}.json")
        assert anno.keys() == masks.keys() == instances.keys()
        for name, a in anno.items():
            first = a["st_frame"] - 1
            frames = list(range(first, first + len(a["bbox"])))
            assert sorted(int(k) for k in masks[name]) == frames
            target = instances[name]["instances"][instances[name]["target"]]
            for t, (x, y, w, h) in zip(frames, a["bbox"]):
                m = mask_utils.decode(masks[name][str(t)]).astype(bool)
                assert m.shape == (p.height, p.width)
                assert m.sum() >= p.min_visible_px, f"{name}: target not visible on frame {t}"
                assert mask_to_box(m) == (x, y, x + w, y + h), f"{name} frame {t}"
                assert target["boxes"][str(t)] == [x, y, x + w, y + h]
                assert 0 <= x and 0 <= y and x + w <= p.width and y + h <= p.height


def test_spans_follow_the_hcstvg_conventions(bench: tuple[Path, SyntheticParams, dict]) -> None:
    out, p, _ = bench
    for split in ("train", "val"):
        for name, a in _load(out, f"{split}_v2.json").items():
            assert a["img_num"] == round(p.fps * p.duration_s)
            assert a["img_size"] == [p.height, p.width] and a["fps"] == p.fps
            first, n = a["st_frame"] - 1, len(a["bbox"])
            assert a["st_frame"] >= 1 and first + n <= a["img_num"], name  # 1-based start, inside the video
            assert round(a["st_time"] * a["fps"]) == first
            assert round(a["ed_time"] * a["fps"]) == first + n  # end of the last GT frame
            assert 0 <= a["st_time"] < a["ed_time"] <= a["img_num"] / a["fps"]
            assert isinstance(a["English"], str) and a["English"].startswith("the ")


def test_sentence_names_the_target_appearance(bench: tuple[Path, SyntheticParams, dict]) -> None:
    out, _, _ = bench
    anno, instances = _load(out, "val_v2.json"), _load(out, "instances_val.json")
    for name, a in anno.items():
        target = instances[name]["instances"][instances[name]["target"]]
        assert a["English"].startswith(f"the {target['color']} {target['shape']} "), name


def test_mp4_decodes_to_img_num_frames_matching_the_masks(bench: tuple[Path, SyntheticParams, dict]) -> None:
    out, p, _ = bench
    anno, masks, instances = (
        _load(out, "val_v2.json"),
        _load(out, "masks_val.json"),
        _load(out, "instances_val.json"),
    )
    for name, a in anno.items():
        cap = cv2.VideoCapture(str(out / "video_parts" / "0" / name))
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(p.fps)
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert len(frames) == a["img_num"]
        assert frames[0].shape == (a["img_size"][0], a["img_size"][1], 3)
        # The decoded pixels under the target mask have the target's colour (lossy codec: tolerance).
        color = instances[name]["instances"][instances[name]["target"]]["color"]
        t = a["st_frame"] - 1 + len(a["bbox"]) // 2
        m = mask_utils.decode(masks[name][str(t)]).astype(bool)
        m = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) if m.sum() > 60 else m
        mean_rgb = frames[t][m][:, ::-1].mean(axis=0)
        assert np.abs(mean_rgb - np.array(COLORS[color])).max() < 40, (name, mean_rgb, color)


# ----------------------------------------------------------------------------------------------- language


def test_expressions_ground_uniquely_on_their_target() -> None:
    for index in range(6):
        video = build_video(SMALL, "train", index)
        g = ground(video.grounded.expression, video.scene)
        assert g.unique
        assert g.candidates == ((video.grounded.target, video.grounded.segment),)
        seg = video.scene.instances[video.grounded.target].segments[video.grounded.segment]
        assert (video.grounded.first_frame, video.grounded.last_frame) == (
            seg.start,
            min(seg.end, video.scene.n_frames) - 1,
        )


def test_scene_features_exist_across_the_set(bench: tuple[Path, SyntheticParams, dict]) -> None:
    out, p, summary = bench
    n = round(p.fps * p.duration_s)
    enters = leaves = crossings = 0
    for split in ("train", "val"):
        for video in _load(out, f"instances_{split}.json").values():
            tracks = [{int(t): b for t, b in inst["boxes"].items()} for inst in video["instances"].values()]
            enters += any(min(tr) > 0 for tr in tracks)
            leaves += any(max(tr) < n - 1 for tr in tracks)
            for i, a in enumerate(tracks):
                for b in tracks[i + 1 :]:
                    both = set(a) & set(b)
                    crossings += any(
                        min(a[t][2], b[t][2]) > max(a[t][0], b[t][0])
                        and min(a[t][3], b[t][3]) > max(a[t][1], b[t][1])
                        for t in both
                    )
    assert enters >= 3 and leaves >= 3 and crossings >= 3
    counts = summary["counts"]["train"]
    for feature in ("occlusion", "same_shape_distractor", "same_color_distractor", "identical_distractor"):
        assert counts[f"with_{feature}"] >= 2, feature
    assert len(counts["expression_kinds"]) >= 3


# ----------------------------------------------------------------------------------------------- scenes


def test_shapes_stay_inside_except_when_entering_or_leaving() -> None:
    p = SyntheticParams()
    n = round(p.fps * p.duration_s)
    for i in range(40):
        scene = sample_scene(np.random.default_rng([99, i]), p)
        for inst in scene.instances:
            segs = inst.segments
            assert all(a.end == b.start for a, b in itertools.pairwise(segs))  # contiguous
            assert inst.leaves or segs[-1].end == n
            assert all(
                a.action != b.action for a, b in itertools.pairwise(segs)
            )  # every boundary is an event
            cx, cy = inst.start_center
            half = inst.size / 2
            for seg in segs:
                for step in (0, seg.end - seg.start):
                    x, y = cx + seg.velocity[0] * step, cy + seg.velocity[1] * step
                    if seg.kind == "move":
                        assert half <= x <= p.width - half and half <= y <= p.height - half
                cx += seg.velocity[0] * (seg.end - seg.start)
                cy += seg.velocity[1] * (seg.end - seg.start)
            if inst.leaves and inst.end_frame < n:  # fully outside at the end of the leave segment
                assert x + half <= 1 or x - half >= p.width - 1 or y + half <= 1 or y - half >= p.height - 1


def test_detector_frames_are_deterministic_and_exact() -> None:
    p = SyntheticParams()
    a = list(render_detector_frames(p, 6, seed=3))
    b = list(render_detector_frames(p, 6, seed=3))
    c = list(render_detector_frames(p, 6, seed=4))
    assert all(np.array_equal(x.image, y.image) and x.labels == y.labels for x, y in zip(a, b))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c))
    for image, labels, masks in a:
        assert image.shape == (p.height, p.width, 3) and image.dtype == np.uint8
        assert labels and len(labels) == len(masks)
        for (cls, box), m in zip(labels, masks):
            assert cls in SHAPE_CLASSES
            assert mask_to_box(m) == box and m.sum() >= p.min_visible_px
            colours = np.unique(image[m].reshape(-1, 3), axis=0)
            assert len(colours) == 1 and tuple(colours[0]) in set(COLORS.values())


def test_crowded_fraction_draws_frames_where_shapes_touch() -> None:
    p = SyntheticParams()

    def touching(masks: list[np.ndarray]) -> bool:
        boxes = [mask_to_box(m) for m in masks]
        return any(
            a[0] <= b[2] + 2 and b[0] <= a[2] + 2 and a[1] <= b[3] + 2 and b[1] <= a[3] + 2
            for i, a in enumerate(boxes)
            for b in boxes[i + 1 :]
        )

    uniform = [touching(f.masks) for f in render_detector_frames(p, 40, seed=5)]
    crowded = [touching(f.masks) for f in render_detector_frames(p, 40, seed=5, crowded_fraction=1.0)]
    assert sum(crowded) >= 30 > sum(uniform) + 10  # crowded frames are otherwise rare


def test_bad_synthetic_params_name_the_key() -> None:
    with pytest.raises(ParamsError, match=r"synthetic\.p_enter"):
        params_from_dict({"synthetic": {"p_enter": 1.5}})
    with pytest.raises(ParamsError, match=r"synthetic\.shape_size"):
        params_from_dict({"synthetic": {"width": 64, "height": 64}})


def test_round_trip_through_the_hcstvg_v2_adapter(bench: tuple[Path, SyntheticParams, dict]) -> None:
    from stvg.data.registry import load_samples

    out, p, _ = bench
    anno, masks = _load(out, "val_v2.json"), _load(out, "masks_val.json")
    result = load_samples("synthetic", out / "anno_v2" / "val_v2.json", video_root=out / "video_parts")
    assert result.invalid == [] and len(result.samples) == p.n_val
    for s in result.samples:
        a = anno[s.video_id]
        first = a["st_frame"] - 1
        last = first + len(a["bbox"]) - 1
        assert Path(s.video) == out / "video_parts" / "0" / s.video_id
        assert (s.query, s.fps, s.n_frames, s.width, s.height) == (
            a["English"],
            p.fps,
            a["img_num"],
            p.width,
            p.height,
        )
        assert s.gt_span_frames == (first, last)
        assert s.gt_span_s == pytest.approx((first / p.fps, (last + 1) / p.fps))
        for t, (x, y, w, h) in zip(range(first, last + 1), a["bbox"]):
            assert tuple(s.gt_boxes[t]) == (x, y, x + w, y + h)
        assert s.gt_masks is not None and {int(k) for k in masks[s.video_id]} == set(s.gt_masks)
