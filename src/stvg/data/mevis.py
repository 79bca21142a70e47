"""MeViS adapter: ``meta_expressions.json`` plus ``mask_dict.json`` (multi-object expressions).

Release format (REFERENCE Part 2 section 4): ``{"videos": {vid: {"frames": [names], "expressions":
{exp_id: {"exp", "obj_id": [...], "anno_id": [...]}}}}}``; ``mask_dict.json`` maps ``str(anno_id)`` to
a per-frame list (indexed like ``frames``) of COCO RLEs or null (object absent). ``valid`` ships only
``exp``: such samples carry no targets or masks.

The GT of an expression on a frame is the **union** of its anno_ids' masks (merged as RLE, never
decoded); frames where all are null have no GT mask and no box. Frame index = position in
``frames`` (0-based); ``gt_boxes`` are the union masks' tight boxes (x2 one past the last pixel),
``gt_span_frames`` runs from the first to the last frame with GT. MeViS states no fps: ``fps``
defaults to 0 (pass ``fps=`` to get times). ``mask_dict.json`` beside the meta file is used
automatically. ``Sample.video`` is the frame folder (``<video_root>/<vid>`` or
``<video_root>/JPEGImages/<vid>``). Sample ids: ``<vid>_<exp_id>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stvg.data.common import LoadResult, Rejections, expect_type, read_json, split_name
from stvg.records import Box, Rle, Sample


def load_mevis(
    path: str | Path,
    *,
    video_root: str | Path | None = None,
    skip_invalid: bool = False,
    mask_dict: str | Path | None = None,
    fps: float = 0.0,
    split: str | None = None,
) -> LoadResult:
    """Read MeViS expressions; masks come from ``mask_dict`` (default: ``mask_dict.json`` beside ``path``).

    ``path`` is a split's ``meta_expressions.json`` or the split folder holding it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "meta_expressions.json"
    split = split if split is not None else (path.parent.name or split_name(path))
    meta = read_json(path)
    expect_type(path, meta, dict, 'an object {"videos": {...}}')
    videos = meta.get("videos")
    expect_type(path, videos, dict, 'an object {"videos": {vid: {frames, expressions}}}')
    if mask_dict is None and (path.parent / "mask_dict.json").is_file():
        mask_dict = path.parent / "mask_dict.json"
    masks: dict[str, Any] | None = None
    if mask_dict is not None:
        masks = read_json(mask_dict)
        expect_type(mask_dict, masks, dict, "an object {anno_id: [RLE or null per frame]}")
    rejections = Rejections(path, skip_invalid)
    root = Path(video_root) if video_root is not None else None

    samples: list[Sample] = []
    for vid, video_entry in videos.items():
        frames = video_entry.get("frames") if isinstance(video_entry, dict) else None
        expressions = video_entry.get("expressions") if isinstance(video_entry, dict) else None
        if not isinstance(frames, list) or not isinstance(expressions, dict):
            rejections.reject(str(vid), "video entry needs a 'frames' list and an 'expressions' object")
            continue
        video = _resolve(root, vid)
        for exp_id, expression in expressions.items():
            sid = f"{vid}_{exp_id}"
            text = expression.get("exp") if isinstance(expression, dict) else None
            if not isinstance(text, str) or not text.strip():
                rejections.reject(sid, "empty query: 'exp' is missing or blank")
                continue
            if video is None:
                rejections.reject(
                    sid, f"video frame folder not found: {root}/{vid} or {root}/JPEGImages/{vid}"
                )
                continue
            obj_ids = tuple(int(o) for o in expression.get("obj_id") or ())
            gt_masks: dict[int, Rle] | None = None
            boxes: dict[int, Box] = {}
            size = (0, 0)
            if masks is not None and expression.get("anno_id"):
                problem, gt_masks, boxes, size = _union(masks, expression["anno_id"], len(frames))
                if problem:
                    rejections.reject(sid, problem)
                    continue
            span = (min(boxes), max(boxes)) if boxes else None
            samples.append(
                Sample(
                    sample_id=sid,
                    dataset="mevis",
                    video=video,
                    query=text.strip(),
                    fps=float(fps),
                    n_frames=len(frames),
                    width=size[1],
                    height=size[0],
                    video_id=str(vid),
                    gt_span_s=(span[0] / fps, (span[1] + 1) / fps) if span and fps > 0 else None,
                    gt_span_frames=span,
                    gt_boxes=boxes,
                    gt_masks=gt_masks,
                    target_ids=obj_ids,
                    split=split,
                )
            )
    return rejections.result(samples)


def _resolve(root: Path | None, vid: str) -> str | None:
    if root is None:
        return str(vid)
    for candidate in (root / vid, root / "JPEGImages" / vid):
        if candidate.is_dir():
            return str(candidate)
    return None


def _union(
    masks: dict[str, Any], anno_ids: list[Any], n_frames: int
) -> tuple[str, dict[int, Rle] | None, dict[int, Box], tuple[int, int]]:
    """Per-frame union RLE and tight box over ``anno_ids``; (problem, masks, boxes, (h, w))."""
    from pycocotools import mask as mask_utils

    tracks = []
    for anno in anno_ids:
        track = masks.get(str(anno))
        if not isinstance(track, list):
            return f"anno_id {anno} is not in mask_dict", None, {}, (0, 0)
        if len(track) != n_frames:
            return f"anno_id {anno} has {len(track)} masks for {n_frames} frames", None, {}, (0, 0)
        tracks.append(track)
    gt_masks: dict[int, Rle] = {}
    boxes: dict[int, Box] = {}
    size = (0, 0)
    for frame in range(n_frames):
        present = [t[frame] for t in tracks if t[frame] is not None]
        if not present:
            continue
        if not all(isinstance(r, dict) and "size" in r and "counts" in r for r in present):
            return f"frame {frame}: masks must be COCO RLE {{size, counts}} or null", None, {}, (0, 0)
        try:
            merged = mask_utils.merge(present, intersect=False) if len(present) > 1 else present[0]
            x, y, w, h = (float(v) for v in mask_utils.toBbox(merged))
        except (TypeError, ValueError) as exc:
            return f"frame {frame}: unreadable RLE ({exc})", None, {}, (0, 0)
        counts = merged["counts"]
        rle = {
            "size": list(merged["size"]),
            "counts": counts.decode() if isinstance(counts, bytes) else counts,
        }
        size = (int(rle["size"][0]), int(rle["size"][1]))
        gt_masks[frame] = rle
        if w > 0 and h > 0:  # an all-empty RLE has no box
            boxes[frame] = (x, y, x + w, y + h)
    return "", gt_masks, boxes, size
