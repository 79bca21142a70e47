"""HC-STVG v1 / v2 adapter (and the synthetic benchmark, which is written in v2's format).

Release format (REFERENCE Part 2 section 1): a dict keyed by the video file name (with extension);
per entry ``bbox`` (xywh pixels, one per frame of the tube), ``st_time``/``ed_time`` (seconds),
``img_num`` (frames), ``st_frame`` (first tube frame, **1-based**), and v1 ``caption`` + ``width``/
``height`` or v2 ``English`` + ``img_size`` = [h, w]. The v2 test file ``query_v2.json`` is
``{file: sentence}`` and loads as samples without span or boxes.

Conventions applied here: first GT frame = ``st_frame - 1``, last = first + len(bbox) - 1 (inclusive,
as CG-STVG reads it); boxes x2 = x + w, no +1; fps = ``img_num / 20`` (HC-STVG's 20-s convention)
unless the entry carries ``fps`` (the synthetic benchmark's extension). The official STVG-R1
evaluation indexes GT boxes with the 1-based ``st_frame`` and so misses the first GT box; we do not.
Boxes must lie inside the frame unless ``clip_boxes`` (CG-STVG clips them) is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from stvg.data.boxparse import BoxArrays, parse_box_arrays
from stvg.data.common import (
    LoadResult,
    Rejections,
    VideoIndex,
    expect_type,
    is_number,
    missing_keys,
    parse_json,
    read_bytes,
    read_json,
    split_name,
)
from stvg.data.errors import AnnotationError
from stvg.data.tubes import BoxTube
from stvg.records import Rle, Sample

HCSTVG_DURATION_S = 20.0  # every HC-STVG clip lasts 20 s; fps = img_num / 20
FAST_PATH_MIN_BYTES = 1 << 20  # below this, plain json is as fast and needs no pandas import
_COMMON_KEYS = ("bbox", "st_time", "ed_time", "img_num", "st_frame")
_VERSION_KEYS = {"v1": ("caption", "width", "height"), "v2": ("English", "img_size")}


def load_hcstvg(
    path: str | Path,
    *,
    version: str = "v2",
    video_root: str | Path | None = None,
    skip_invalid: bool = False,
    masks: str | Path | None = None,
    split: str | None = None,
    dataset: str | None = None,
    clip_boxes: bool = False,
) -> LoadResult:
    """Read an HC-STVG ``train``/``test``/``val`` annotation file (or v2's ``query_v2.json``).

    ``masks``: a ``{video_key: {"<0-based frame>": COCO RLE}}`` file filling ``gt_masks``.
    """
    if version not in _VERSION_KEYS:
        raise ValueError(f"HC-STVG version must be 'v1' or 'v2', got {version!r}")
    path = Path(path)
    dataset = dataset or f"hcstvg-{version}"
    split = split if split is not None else split_name(path, "_v2", "_v1")
    raw = read_bytes(path)
    fast = parse_box_arrays(raw) if len(raw) >= FAST_PATH_MIN_BYTES else None
    obj = fast.obj if fast is not None else parse_json(path, raw)
    expect_type(path, obj, dict, "an object keyed by video file name")
    rejections = Rejections(path, skip_invalid)
    videos = VideoIndex(video_root) if video_root is not None else None
    ids = _sample_ids(obj)

    if version == "v2" and obj and all(isinstance(v, str) for v in obj.values()):
        return _load_queries(obj, ids, dataset, split, videos, rejections)

    mask_table = _read_masks(masks) if masks is not None else {}
    parsed = _parse_entries(obj, ids, version, fast, rejections)
    boxes, offsets = _gather_boxes(parsed, fast)
    bad = _check_boxes(parsed, boxes, offsets, clip_boxes)
    boxes = _freeze(boxes)

    samples: list[Sample] = []
    for k, e in enumerate(parsed):
        if bad[k]:
            rejections.reject(e["id"], bad[k])
            continue
        video = _resolve(videos, e["key"], e["id"], rejections)
        if video is None:
            continue
        first = e["st_frame"] - 1
        masks_ok, gt_masks = _masks_for(mask_table.get(e["key"]), masks)
        if not masks_ok:
            rejections.reject(e["id"], f"masks in {masks} must be {{'<0-based frame>': COCO RLE}}")
            continue
        samples.append(
            Sample(
                sample_id=e["id"],
                dataset=dataset,
                video=video,
                query=e["query"],
                fps=e["fps"],
                n_frames=e["img_num"],
                width=e["width"],
                height=e["height"],
                video_id=e["key"],
                gt_span_s=(e["st_time"], e["ed_time"]),
                gt_span_frames=(first, first + e["n"] - 1),
                gt_boxes=BoxTube(first, boxes[offsets[k] : offsets[k + 1]]),
                gt_masks=gt_masks or None,
                split=split,
            )
        )
    return rejections.result(samples)


def _sample_ids(obj: dict[str, Any]) -> dict[str, str]:
    """File stem per key; the full key where two files share a stem (``a.mp4`` and ``a.mkv``)."""
    stems = [os.path.splitext(os.path.basename(k))[0] for k in obj]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return {k: (s if seen[s] == 1 else k) for k, s in zip(obj, stems)}


def _load_queries(
    obj: dict[str, Any],
    ids: dict[str, str],
    dataset: str,
    split: str,
    videos: VideoIndex | None,
    rejections: Rejections,
) -> LoadResult:
    samples = []
    for key, sentence in obj.items():
        sid = ids[key]
        if not sentence.strip():
            rejections.reject(sid, "empty query sentence")
            continue
        video = _resolve(videos, key, sid, rejections)
        if video is None:
            continue
        samples.append(
            Sample(
                sid,
                dataset,
                video,
                sentence.strip(),
                fps=0.0,
                n_frames=0,
                width=0,
                height=0,
                video_id=key,
                split=split,
            )
        )
    return rejections.result(samples)


def _parse_entries(
    obj: dict[str, Any], ids: dict[str, str], version: str, fast: BoxArrays | None, rejections: Rejections
) -> list[dict[str, Any]]:
    """Validate the scalar fields of each entry; box arrays are checked later, all at once."""
    required = _COMMON_KEYS + _VERSION_KEYS[version]
    out = []
    for key, entry in obj.items():
        sid = ids[key]
        if not isinstance(entry, dict):
            rejections.reject(
                sid, f"entry must be an object with {', '.join(required)}, got {type(entry).__name__}"
            )
            continue
        problem, parsed = _parse_entry(entry, version, required, fast)
        if problem:
            rejections.reject(sid, problem)
            continue
        parsed.update(key=key, id=sid)
        out.append(parsed)
    return out


def _parse_entry(
    entry: dict[str, Any], version: str, required: tuple[str, ...], fast: BoxArrays | None
) -> tuple[str, dict[str, Any]]:
    missing = missing_keys(entry, required)
    if missing:
        return f"missing field(s) {', '.join(missing)}", {}
    if version == "v1":
        query, width, height = entry["caption"], entry["width"], entry["height"]
    else:
        size = entry["img_size"]
        if not (isinstance(size, list) and len(size) == 2):
            return f"img_size must be [height, width], got {size!r}", {}
        height, width = size
        query = entry["English"]
    if not isinstance(query, str) or not query.strip():
        return "empty query sentence", {}
    for name, value in (("width", width), ("height", height), ("img_num", entry["img_num"])):
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return f"{name} must be a positive integer, got {value!r}", {}
    st_frame = entry["st_frame"]
    if not (isinstance(st_frame, int) and not isinstance(st_frame, bool) and st_frame >= 1):
        return f"st_frame must be an integer >= 1 (it is 1-based), got {st_frame!r}", {}
    st, ed = entry["st_time"], entry["ed_time"]
    if not (is_number(st) and is_number(ed)):
        return f"st_time/ed_time must be numbers, got {st!r}/{ed!r}", {}
    if ed <= st:
        return f"end before start: ed_time {ed} <= st_time {st}", {}
    fps = entry.get("fps")
    if fps is not None and not (is_number(fps) and fps > 0):
        return f"fps must be a positive number, got {fps!r}", {}
    bbox = entry["bbox"]
    rows = fast.lookup(bbox) if fast is not None else None
    if rows is not None:
        n, array = rows[1] - rows[0], None
    else:
        array = _box_array(bbox)
        if isinstance(array, str):
            return array, {}
        n = array.shape[0]
    if n == 0:
        return "bbox is empty (a GT tube needs at least one box)", {}
    img_num = entry["img_num"]
    if st_frame - 1 + n > img_num:
        return (f"tube frames {st_frame - 1}..{st_frame - 2 + n} (0-based) run past img_num {img_num}"), {}
    return "", {
        "query": query.strip(),
        "width": width,
        "height": height,
        "img_num": img_num,
        "st_frame": st_frame,
        "st_time": float(st),
        "ed_time": float(ed),
        "fps": float(fps) if fps is not None else img_num / HCSTVG_DURATION_S,
        "n": n,
        "rows": rows,
        "array": array,
    }


def _box_array(bbox: Any) -> np.ndarray | str:
    """``bbox`` as an (n, 4) float array, or the reason it is not one."""
    if not isinstance(bbox, list):
        return f"bbox must be a list of [x, y, w, h], got {type(bbox).__name__}"
    try:
        array = np.array(bbox, dtype=np.float64)
    except (TypeError, ValueError):
        return "bbox must be a list of [x, y, w, h] numbers"
    if len(bbox) == 0:
        return np.zeros((0, 4))
    if array.ndim != 2 or array.shape[1] != 4:
        return "bbox must be a list of [x, y, w, h] numbers"
    if not np.isfinite(array).all():
        return "bbox holds non-finite numbers"
    return array


def _gather_boxes(parsed: list[dict[str, Any]], fast: BoxArrays | None) -> tuple[np.ndarray, np.ndarray]:
    """All tubes as one (N, 4) xyxy array and per-entry offsets (one vectorised conversion)."""
    counts = np.fromiter((e["n"] for e in parsed), dtype=np.int64, count=len(parsed))
    offsets = np.zeros(len(parsed) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if fast is not None and all(e["rows"] is not None for e in parsed):
        starts = np.fromiter((e["rows"][0] for e in parsed), dtype=np.int64, count=len(parsed))
        if len(parsed) == len(fast.offsets) - 1 and np.array_equal(starts, fast.offsets[:-1]):
            boxes = fast.boxes  # entries in file order, nothing dropped: use the parsed array as is
        else:
            index = (
                np.concatenate([np.arange(s, s + n) for s, n in zip(starts, counts)]) if len(parsed) else []
            )
            boxes = fast.boxes[np.asarray(index, dtype=np.int64)]
    else:
        pieces = [
            e["array"] if e["array"] is not None else fast.boxes[e["rows"][0] : e["rows"][1]]  # type: ignore[union-attr]
            for e in parsed
        ]
        boxes = np.concatenate(pieces) if pieces else np.zeros((0, 4))
    boxes = np.asarray(boxes, dtype=np.float64)  # a copy, or the parse's own array: safe to convert in place
    boxes[:, 2] += boxes[:, 0]  # xywh -> xyxy, no +1
    boxes[:, 3] += boxes[:, 1]
    return boxes, offsets


def _check_boxes(
    parsed: list[dict[str, Any]], boxes: np.ndarray, offsets: np.ndarray, clip: bool
) -> list[str]:
    """Per entry, why its boxes are unusable ("" when fine); clips in place when ``clip``.

    Bounds are checked per entry with ``reduceat`` (every entry here has >= 1 box), so no per-box
    copy of the frame size is built; only a failing entry is searched box by box for the message.
    """
    if not parsed:
        return []
    width = np.fromiter((e["width"] for e in parsed), dtype=np.float64, count=len(parsed))
    height = np.fromiter((e["height"] for e in parsed), dtype=np.float64, count=len(parsed))
    x1, y1, x2, y2 = boxes.T
    starts = offsets[:-1]
    if clip:
        counts = np.diff(offsets)
        np.clip(x1, 0, np.repeat(width, counts), out=x1)
        np.clip(x2, 0, np.repeat(width, counts), out=x2)
        np.clip(y1, 0, np.repeat(height, counts), out=y1)
        np.clip(y2, 0, np.repeat(height, counts), out=y2)
    degenerate = np.logical_or.reduceat((x2 <= x1) | (y2 <= y1), starts)
    outside = (
        (np.minimum.reduceat(x1, starts) < 0)
        | (np.minimum.reduceat(y1, starts) < 0)
        | (np.maximum.reduceat(x2, starts) > width)
        | (np.maximum.reduceat(y2, starts) > height)
    )
    reasons = [""] * len(parsed)
    for k in np.flatnonzero(degenerate | outside):
        e = parsed[k]
        tube = boxes[offsets[k] : offsets[k + 1]]
        bad_degenerate = (tube[:, 2] <= tube[:, 0]) | (tube[:, 3] <= tube[:, 1])
        bad_outside = (tube[:, :2] < 0).any(axis=1) | (tube[:, 2] > e["width"]) | (tube[:, 3] > e["height"])
        row = int(np.flatnonzero(bad_degenerate | bad_outside)[0])
        frame = e["st_frame"] - 1 + row
        box = [round(float(v), 2) for v in tube[row]]
        if bad_degenerate[row]:
            reasons[k] = f"degenerate box {box} on frame {frame} (needs x1 < x2 and y1 < y2)"
        else:
            reasons[k] = (
                f"box {box} on frame {frame} lies outside the {e['width']}x{e['height']} frame"
                " (data.clip_boxes: true clips boxes to the frame instead)"
            )
    return reasons


def _freeze(boxes: np.ndarray) -> np.ndarray:
    boxes.flags.writeable = False  # the tubes are views into it
    return boxes


def _resolve(videos: VideoIndex | None, key: str, sid: str, rejections: Rejections) -> str | None:
    if videos is None:
        return key
    found = videos.find(key)
    if found is None:
        rejections.reject(sid, videos.missing_reason(key))
        return None
    return str(found)


def _read_masks(path: str | Path) -> dict[str, Any]:
    obj = read_json(path)
    expect_type(path, obj, dict, "an object {video_key: {frame: RLE}}")
    return obj


def _masks_for(entry: Any, path: str | Path | None) -> tuple[bool, dict[int, Rle] | None]:
    """(well-formed, the sample's ``{frame: RLE}``); None when the masks file has no entry for it."""
    if entry is None:
        return True, None
    if not isinstance(entry, dict):
        return False, None
    try:
        out = {int(f): rle for f, rle in entry.items()}
    except ValueError:
        return False, None
    return all(isinstance(r, dict) and "counts" in r and "size" in r for r in out.values()), out


def hcstvg_masks_beside(path: str | Path) -> Path | None:
    """``<dir>/masks_<split>.json`` beside ``<dir>/<split>_v2.json`` when it exists (synthetic layout)."""
    path = Path(path)
    candidate = path.with_name(f"masks_{split_name(path, '_v2', '_v1')}.json")
    return candidate if candidate.is_file() else None


__all__ = ["HCSTVG_DURATION_S", "AnnotationError", "hcstvg_masks_beside", "load_hcstvg"]
