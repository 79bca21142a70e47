"""The synthetic STVG benchmark: seeded moving-shape videos with one referring expression each.

``generate_benchmark(p, out_dir)`` writes, atomically and byte-for-byte deterministically for a given
``SyntheticParams``, HC-STVG v2's own release layout plus masks (data set format ``synthetic``):

    anno_v2/train_v2.json, val_v2.json      {"<name>.mp4": {bbox [[x,y,w,h]...], st_time, ed_time, img_num,
                                             English, img_size [h, w], st_frame (1-based), fps}}
    anno_v2/masks_{train,val}.json          {"<name>.mp4": {"<0-based frame>": COCO RLE of the target}}
    anno_v2/instances_{train,val}.json      {"<name>.mp4": {"target": key, "instances": {key: {shape,
                                             color, boxes: {"<0-based frame>": [x1,y1,x2,y2]}}}}}
    video_parts/0/<name>.mp4                OpenCV mp4v, native fps
    summary.json                            counts, scene-feature tallies, params

Conventions (where HC-STVG is silent or assumes otherwise):
- ``fps`` is our extension: HC-STVG assumes 20-s videos with fps = img_num / 20, which short clips break.
- The GT tube covers 0-based frames ``first .. last`` (inclusive); ``st_frame = first + 1``,
  ``st_time = first / fps`` and ``ed_time = (last + 1) / fps`` (the end of the last GT frame), so
  ``round(st_time * fps) == st_frame - 1`` and ``len(bbox) == last - first + 1``.
- Boxes and masks are the *visible* part of the target: clipped to the frame and minus the pixels of
  shapes drawn over it. Instance keys are z-order indices ("0" is at the bottom).
- summary.json holds no wall-clock time, so regenerating gives identical bytes (a stable DVC hash);
  the returned summary adds ``seconds``.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from stvg.config import SyntheticParams, params_to_dict
from stvg.data.synthetic_language import GroundedExpression, choose_expression, usable_expressions
from stvg.data.synthetic_render import make_background, render_frame, render_video
from stvg.data.synthetic_scene import SHAPE_CLASSES, Scene, instance_centers, n_frames_of, sample_scene
from stvg.geometry import mask_to_box
from stvg.io import atomic_dir

__all__ = [
    "SHAPE_CLASSES",
    "DetectorFrame",
    "SyntheticVideo",
    "build_video",
    "generate_benchmark",
    "render_detector_frames",
    "video_name",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
_SPLIT_STREAM = {"train": 0, "val": 1}
_DETECTOR_STREAM = 2
VIDEO_PART = "0"


class SyntheticGenerationError(RuntimeError):
    """No scene with an unambiguous, visible expression was found within max_attempts."""


@dataclass(frozen=True)
class SyntheticVideo:
    """One generated video with its expression and exact ground truth, before serialisation."""

    name: str
    scene: Scene
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    visible: np.ndarray  # (N, T, H, W) bool: each instance's visible pixels
    occluded: np.ndarray  # (N, T) bool: partly covered by a shape drawn later
    grounded: GroundedExpression
    attempts: int

    @property
    def sentence(self) -> str:
        return self.grounded.expression.text


class DetectorFrame(NamedTuple):
    """One random frame for detector training: labels and masks are the visible instances."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: list[tuple[str, tuple[float, float, float, float]]]  # (class name in SHAPE_CLASSES, xyxy)
    masks: list[np.ndarray]  # (H, W) bool, same order as labels


def video_name(split: str, index: int) -> str:
    """File name of a benchmark video (unique across splits, since all share video_parts/0)."""
    return f"synthetic_{split}_{index:04d}.mp4"


def build_video(p: SyntheticParams, split: str, index: int) -> SyntheticVideo:
    """Sample scenes for one video until one has an unambiguous expression whose target stays visible.

    The random stream depends only on (seed, split, index, attempt), so a video does not change when
    n_train / n_val change. GT spans last at least ``segment_s[0]`` (>= 2 frames at the policy's 2 fps
    for the default 1 s), which excludes segments cut short by the video's end.
    """
    min_span = max(2, round(p.segment_s[0] * p.fps))  # GT spans last at least one shortest segment
    for attempt in range(p.max_attempts):
        rng = np.random.default_rng([p.seed, _SPLIT_STREAM[split], index, attempt])
        scene = sample_scene(rng, p)
        background = make_background(rng, p.height, p.width)
        frames, visible, occluded = render_video(scene, background)
        area = visible.sum(axis=(2, 3))  # (N, T)
        usable = usable_expressions(scene, area, min_visible_px=p.min_visible_px, min_span_frames=min_span)
        if usable:
            grounded = choose_expression(rng, scene, usable)
            return SyntheticVideo(
                video_name(split, index), scene, frames, visible, occluded, grounded, attempt + 1
            )
    raise SyntheticGenerationError(
        f"synthetic {split} video {index}: no unambiguous expression in {p.max_attempts} scenes; "
        "raise synthetic.max_attempts or loosen synthetic.min_visible_px / shape_size"
    )


# ----------------------------------------------------------------------------------------------- annotations


def _box(mask: np.ndarray) -> list[int]:
    box = mask_to_box(mask)
    assert box is not None
    return [int(v) for v in box]


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def hcstvg_entry(video: SyntheticVideo, p: SyntheticParams) -> dict[str, Any]:
    """The HC-STVG v2 annotation of one video (plus the ``fps`` extension)."""
    g = video.grounded
    bbox = []
    for t in range(g.first_frame, g.last_frame + 1):
        x1, y1, x2, y2 = _box(video.visible[g.target, t])
        bbox.append([x1, y1, x2 - x1, y2 - y1])
    return {
        "bbox": bbox,
        "st_time": round(g.first_frame / p.fps, 6),
        "ed_time": round((g.last_frame + 1) / p.fps, 6),
        "img_num": video.scene.n_frames,
        "English": video.sentence,
        "img_size": [p.height, p.width],
        "st_frame": g.first_frame + 1,
        "fps": p.fps,
    }


def mask_entry(video: SyntheticVideo) -> dict[str, Any]:
    """The target's visible mask on every GT frame, as COCO RLE keyed by the 0-based frame."""
    g = video.grounded
    return {str(t): _rle(video.visible[g.target, t]) for t in range(g.first_frame, g.last_frame + 1)}


def instances_entry(video: SyntheticVideo) -> dict[str, Any]:
    """Every instance's visible box on every frame where it shows at least one pixel."""
    instances = {}
    for i, inst in enumerate(video.scene.instances):
        present = np.flatnonzero(video.visible[i].any(axis=(1, 2)))
        boxes = {str(int(t)): _box(video.visible[i, t]) for t in present}
        instances[str(i)] = {"shape": inst.shape, "color": inst.color, "boxes": boxes}
    return {"target": str(video.grounded.target), "instances": instances}


def scene_features(video: SyntheticVideo) -> dict[str, bool]:
    """Which benchmark features this video shows (tallied in summary.json and checked by tests)."""
    scene, target = video.scene, video.scene.instances[video.grounded.target]
    others = [inst for j, inst in enumerate(scene.instances) if j != video.grounded.target]
    present = video.visible.any(axis=(2, 3))  # (N, T)
    return {
        "enters": any(inst.appear_frame > 0 for inst in scene.instances),
        "leaves": any(inst.leaves and inst.end_frame < scene.n_frames for inst in scene.instances),
        "occlusion": bool((video.occluded & present).any()),
        "same_shape_distractor": any(o.shape == target.shape for o in others),
        "same_color_distractor": any(o.color == target.color for o in others),
        "identical_distractor": any(o.appearance == target.appearance for o in others),
    }


# ----------------------------------------------------------------------------------------------- writing


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode RGB frames with OpenCV's mp4v (FFmpeg mpeg4); measured byte-identical across runs."""
    import cv2

    _, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot open an mp4v writer for {path}; check the opencv-python build")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _dump_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")


def generate_benchmark(p: SyntheticParams, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Write the whole benchmark to ``out_dir`` (replaced atomically); returns the summary (+ seconds)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    counts: dict[str, Any] = {}
    with atomic_dir(out_dir) as tmp:
        anno_dir = tmp / "anno_v2"
        video_dir = tmp / "video_parts" / VIDEO_PART
        anno_dir.mkdir(parents=True)
        video_dir.mkdir(parents=True)
        total = p.n_train + p.n_val
        bar = tqdm(total=total, desc="synthetic videos", unit="video", disable=not progress)
        for split, n in (("train", p.n_train), ("val", p.n_val)):
            anno: dict[str, Any] = {}
            masks: dict[str, Any] = {}
            instances: dict[str, Any] = {}
            tally: dict[str, int] = {"videos": 0, "frames": 0, "gt_frames": 0, "scene_attempts": 0}
            kinds: dict[str, int] = {}
            for index in range(n):
                video = build_video(p, split, index)
                write_mp4(video_dir / video.name, video.frames, p.fps)
                anno[video.name] = hcstvg_entry(video, p)
                masks[video.name] = mask_entry(video)
                instances[video.name] = instances_entry(video)
                tally["videos"] += 1
                tally["frames"] += video.scene.n_frames
                tally["gt_frames"] += video.grounded.last_frame - video.grounded.first_frame + 1
                tally["scene_attempts"] += video.attempts
                for key, on in scene_features(video).items():
                    tally[f"with_{key}"] = tally.get(f"with_{key}", 0) + int(on)
                kind = video.grounded.expression.kind
                kinds[kind] = kinds.get(kind, 0) + 1
                bar.update(1)
            _dump_json(anno_dir / f"{split}_v2.json", anno)
            _dump_json(anno_dir / f"masks_{split}.json", masks)
            _dump_json(anno_dir / f"instances_{split}.json", instances)
            counts[split] = {**tally, "expression_kinds": dict(sorted(kinds.items()))}
        bar.close()
        summary = {
            "format": "synthetic",
            "counts": counts,
            "frames_per_video": n_frames_of(p),
            "shape_classes": list(SHAPE_CLASSES),
            "params": params_to_dict(p),
        }
        (tmp / "summary.json").write_text(
            json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    seconds = time.perf_counter() - t0
    n_frames = sum(c["frames"] for c in counts.values())
    log.info(
        "synthetic benchmark: %d videos, %d frames in %.1f s -> %s",
        p.n_train + p.n_val,
        n_frames,
        seconds,
        out_dir,
    )
    return {**summary, "seconds": round(seconds, 3)}


# ----------------------------------------------------------------------------------------------- detector


def crowded_frames(scene: Scene, centers: list[np.ndarray]) -> np.ndarray:
    """Frames on which two instances' bounding squares touch or overlap (crossings, occlusions)."""
    n = scene.n_frames
    crowded = np.zeros(n, dtype=bool)
    for (a, ia), (b, ib) in itertools.combinations(enumerate(scene.instances), 2):
        gap = (ia.size + ib.size) / 2 + 2  # centre distance (per axis) at which the squares touch
        d = np.abs(centers[a] - centers[b])  # (n, 2), NaN where either is absent
        with np.errstate(invalid="ignore"):
            crowded |= (d[:, 0] <= gap) & (d[:, 1] <= gap)
    return crowded


def render_detector_frames(
    p: SyntheticParams,
    n: int,
    seed: int,
    *,
    min_visible_px: int | None = None,
    crowded_fraction: float = 0.0,
) -> Iterator[DetectorFrame]:
    """``n`` single frames from fresh random scenes of the benchmark distribution, for detector training.

    Each frame comes from its own scene (stream (seed, detector, i), disjoint from the benchmark's) at a
    uniformly drawn time; with probability ``crowded_fraction`` the time is drawn among the scene's
    crowded frames instead (``crowded_frames``: shapes touching or overlapping), which a uniform draw
    rarely picks but which is where a detector merges two shapes into one box and a tracker then
    switches IDs. Labels are the instances showing >= ``min_visible_px`` pixels (default
    ``p.min_visible_px``), with class names from SHAPE_CLASSES and tight boxes of their visible masks.
    """
    threshold = p.min_visible_px if min_visible_px is None else min_visible_px
    for i in range(n):
        rng = np.random.default_rng([seed, _DETECTOR_STREAM, i])
        scene = sample_scene(rng, p)
        background = make_background(rng, p.height, p.width)
        frame = int(rng.integers(scene.n_frames))
        centers = [instance_centers(inst, scene.n_frames) for inst in scene.instances]
        if crowded_fraction > 0 and rng.random() < crowded_fraction:
            crowded = np.flatnonzero(crowded_frames(scene, centers))
            if crowded.size:
                frame = int(rng.choice(crowded))
        image, visible = render_frame(scene, frame, background, centers)
        labels, masks = [], []
        for inst, mask in zip(scene.instances, visible):
            if int(mask.sum()) >= threshold:
                box = mask_to_box(mask)
                assert box is not None
                labels.append((inst.shape, box))
                masks.append(mask)
        yield DetectorFrame(image, labels, masks)
