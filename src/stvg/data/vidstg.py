"""VidSTG adapter: declarative (``captions``) and interrogative (``questions``) sentences per entry.

Release format (REFERENCE Part 2 section 2): ``{train,val,test}_annotations.json`` is a list of
entries with ``vid``, ``fps``, ``frame_count``, ``width``, ``height``, ``used_segment``,
``temporal_gt`` ``{begin_fid, end_fid}`` and the sentences, each with the ``target_id`` (a VidOR
``tid``). ``temporal_gt.end_fid`` is **exclusive** (it equals ``frame_count`` in 744 val entries), so
the last GT frame is ``end_fid - 1``; the time span is ``[begin_fid / fps, end_fid / fps]``.
``used_segment`` is inclusive (``end_fid`` = ``frame_count - 1``; ST-Align's ``split`` agrees) and
becomes ``Sample.clip_frames``.

Boxes live in VidOR per-video files (``vidor_root/**/<vid>.json``) whose ``trajectories`` list holds,
per frame, ``[{tid, bbox: {xmin, ymin, xmax, ymax}}]``. Without ``vidor_root`` the samples carry
spans but no boxes. Sample ids: ``<vid>_<entry>_decl<k>`` / ``<vid>_<entry>_inter<k>``.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from stvg.data.common import (
    LoadResult,
    Rejections,
    VideoIndex,
    box_problem,
    expect_type,
    is_number,
    missing_keys,
    read_json,
    split_name,
)
from stvg.data.errors import AnnotationError
from stvg.records import Box, Sample

_REQUIRED = ("vid", "fps", "frame_count", "width", "height", "temporal_gt")
_CACHED_VIDEOS = 32
_SENTENCES = (("captions", "declarative", "decl"), ("questions", "interrogative", "inter"))


def load_vidstg(
    path: str | Path,
    *,
    video_root: str | Path | None = None,
    skip_invalid: bool = False,
    vidor_root: str | Path | None = None,
    split: str | None = None,
    clip_boxes: bool = False,
) -> LoadResult:
    """Read a VidSTG annotation list; ``vidor_root`` (VidOR annotation folder) adds the GT boxes."""
    path = Path(path)
    split = split if split is not None else split_name(path, "_annotations")
    entries = read_json(path)
    expect_type(path, entries, list, "a list of entries")
    rejections = Rejections(path, skip_invalid)
    videos = VideoIndex(video_root) if video_root is not None else None
    trajectories = _TrajectoryStore(vidor_root) if vidor_root is not None else None

    samples: list[Sample] = []
    for idx, entry in enumerate(entries):
        base = f"{entry.get('vid', '?')}_{idx}" if isinstance(entry, dict) else f"entry{idx}"
        problem = _entry_problem(entry)
        if problem:
            rejections.reject(base, problem)
            continue
        vid = str(entry["vid"])
        fps, n_frames = float(entry["fps"]), int(entry["frame_count"])
        width, height = int(entry["width"]), int(entry["height"])
        first, end_excl = int(entry["temporal_gt"]["begin_fid"]), int(entry["temporal_gt"]["end_fid"])
        clip = _segment(entry, n_frames)
        video = _resolve(videos, vid, base, rejections)
        if video is None:
            continue
        tracks = None
        if trajectories is not None:
            try:
                tracks = trajectories.get(vid)
            except AnnotationError as exc:
                rejections.reject(base, exc.reason)
                continue
        for field_name, sentence_type, tag in _SENTENCES:
            for k, sentence in enumerate(entry.get(field_name) or []):
                sid = f"{base}_{tag}{k}"
                text = sentence.get("description") if isinstance(sentence, dict) else None
                target = sentence.get("target_id") if isinstance(sentence, dict) else None
                if not isinstance(text, str) or not text.strip():
                    rejections.reject(sid, f"empty {field_name}[{k}].description")
                    continue
                if not (isinstance(target, int) and not isinstance(target, bool)):
                    rejections.reject(sid, f"{field_name}[{k}].target_id must be an integer, got {target!r}")
                    continue
                boxes: dict[int, Box] = {}
                if tracks is not None:
                    boxes, why = _target_boxes(tracks, target, first, end_excl - 1, width, height, clip_boxes)
                    if why:
                        rejections.reject(sid, why)
                        continue
                samples.append(
                    Sample(
                        sample_id=sid,
                        dataset="vidstg",
                        video=video,
                        query=text.strip(),
                        fps=fps,
                        n_frames=n_frames,
                        width=width,
                        height=height,
                        sentence_type=sentence_type,
                        video_id=vid,
                        gt_span_s=(first / fps, end_excl / fps),
                        gt_span_frames=(first, end_excl - 1),
                        gt_boxes=boxes,
                        target_ids=(target,),
                        split=split,
                        clip_frames=clip,
                    )
                )
    return rejections.result(samples)


def _entry_problem(entry: Any) -> str:
    if not isinstance(entry, dict):
        return f"entry must be an object, got {type(entry).__name__}"
    missing = missing_keys(entry, _REQUIRED)
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if not (is_number(entry["fps"]) and entry["fps"] > 0):
        return f"fps must be a positive number, got {entry['fps']!r}"
    for key in ("frame_count", "width", "height"):
        value = entry[key]
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return f"{key} must be a positive integer, got {value!r}"
    gt = entry["temporal_gt"]
    if not (
        isinstance(gt, dict) and isinstance(gt.get("begin_fid"), int) and isinstance(gt.get("end_fid"), int)
    ):
        return f"temporal_gt must be {{begin_fid, end_fid}} integers, got {gt!r}"
    if gt["end_fid"] <= gt["begin_fid"]:
        return f"end before start: temporal_gt end_fid {gt['end_fid']} <= begin_fid {gt['begin_fid']}"
    if gt["begin_fid"] < 0 or gt["end_fid"] > entry["frame_count"]:
        return (
            f"temporal_gt [{gt['begin_fid']}, {gt['end_fid']}) (end exclusive) lies outside the "
            f"video's {entry['frame_count']} frames"
        )
    return ""


def _segment(entry: dict[str, Any], n_frames: int) -> tuple[int, int] | None:
    seg = entry.get("used_segment")
    if not (
        isinstance(seg, dict)
        and isinstance(seg.get("begin_fid"), int)
        and isinstance(seg.get("end_fid"), int)
    ):
        return None
    return max(0, seg["begin_fid"]), min(n_frames - 1, seg["end_fid"])


def _resolve(videos: VideoIndex | None, vid: str, sid: str, rejections: Rejections) -> str | None:
    name = f"{vid}.mp4"
    if videos is None:
        return name
    found = videos.find(name)
    if found is None:
        rejections.reject(sid, videos.missing_reason(name))
        return None
    return str(found)


def _target_boxes(
    tracks: dict[int, dict[int, Box]], tid: int, first: int, last: int, width: int, height: int, clip: bool
) -> tuple[dict[int, Box], str]:
    """The target's boxes on GT frames ``first..last``; frames where VidOR has none stay absent."""
    track = tracks.get(tid)
    if track is None:
        return {}, f"target_id {tid} has no VidOR trajectory"
    boxes: dict[int, Box] = {}
    for frame in range(first, last + 1):
        box = track.get(frame)
        if box is None:
            continue
        if clip:
            box = (
                min(max(box[0], 0), width),
                min(max(box[1], 0), height),
                min(max(box[2], 0), width),
                min(max(box[3], 0), height),
            )
        why = box_problem(box, width, height)
        if why:
            return (
                {},
                f"{why} on frame {frame} (target_id {tid}; data.clip_boxes: true clips boxes to the frame)",
            )
        boxes[frame] = box
    if not boxes:
        return {}, f"target_id {tid} has no VidOR box on GT frames {first}..{last}"
    return boxes, ""


class _TrajectoryStore:
    """VidOR trajectory files, found once under ``vidor_root`` and read per video on demand (cached)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._paths: dict[str, Path] | None = None
        self._cache: OrderedDict[str, dict[int, dict[int, Box]]] = OrderedDict()

    def get(self, vid: str) -> dict[int, dict[int, Box]]:
        if vid in self._cache:
            self._cache.move_to_end(vid)
        else:
            if self._paths is None:
                self._paths = {p.stem: p for p in sorted(self.root.rglob("*.json"))}
            path = self._paths.get(vid)
            if path is None:
                raise AnnotationError(
                    str(self.root), f"no VidOR trajectory file {vid}.json under vidor_root {self.root}"
                )
            self._cache[vid] = read_trajectories(path)
            if len(self._cache) > _CACHED_VIDEOS:  # bounded: VidOR train holds 7,000 videos
                self._cache.popitem(last=False)
        return self._cache[vid]


def read_trajectories(path: str | Path) -> dict[int, dict[int, Box]]:
    """A VidOR annotation file as ``{tid: {frame: xyxy}}`` (VidOR boxes are already xyxy pixels)."""
    obj = read_json(path)
    expect_type(path, obj, dict, "a VidOR annotation object")
    frames = obj.get("trajectories")
    if not isinstance(frames, list):
        raise AnnotationError(str(path), "missing the 'trajectories' list (one list of boxes per frame)")
    tracks: dict[int, dict[int, Box]] = {}
    try:
        for frame, objects in enumerate(frames):
            for o in objects:
                b = o["bbox"]
                tracks.setdefault(int(o["tid"]), {})[frame] = (
                    float(b["xmin"]),
                    float(b["ymin"]),
                    float(b["xmax"]),
                    float(b["ymax"]),
                )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(
            str(path), f"trajectories[{frame}] must hold {{tid, bbox: {{xmin, ymin, xmax, ymax}}}} ({exc!r})"
        ) from exc
    return tracks
