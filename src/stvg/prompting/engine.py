"""Prompt one video: ``backend.track`` -> repair -> ``backend.complete`` -> fill -> render -> entry.

``prompt_video`` is the one entry point (the prompt stage calls it per video; so may anything that
needs a raw video prompted). The backend (``backends``: ``sam2``, the paper's path, or the
``synthetic_cpu`` stand-in) turns frames and detections into raw tracks; everything after that is
shared and backend-blind: ID repair (``identity``, with the backend's ``similarity``), the backend's
own completion of what it could not propagate, gap filling (``fill``), the red-ID overlay and the
policy's frames (``render``, ``sampling``). The result is everything one mask-database entry holds,
plus timings that never enter it (an entry must be a pure function of its key).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stvg.config import PromptParams
from stvg.prompting.backends import build_backend
from stvg.prompting.backends.base import Detector, RawTracking, Stopwatch, TrackingBackend
from stvg.prompting.fill import fill_occluded
from stvg.prompting.identity import MergeRules, RepairRules, Tracks, count_new_ids, renumber, repair_tracks
from stvg.prompting.maskdb import TABLE_COLUMNS
from stvg.prompting.render import render_video
from stvg.prompting.video import FrameSource, VideoFrames, effective_track_fps


class NoInstancesError(RuntimeError):
    """No instance survives in the whole video (the video is reported, not written)."""


@dataclass(frozen=True)
class VideoResult:
    """Everything the mask database stores for one video, and the timings it does not."""

    table: pd.DataFrame  # maskdb.TABLE_COLUMNS
    summary: dict[str, Any]
    sampling: dict[str, Any]
    sampled_frames: np.ndarray  # (T, H, W, 3) uint8 RGB with red IDs
    rendered_frames: int  # frames in the prompted mp4
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step: never stored in the entry


@dataclass
class _Repaired:
    tracks: Tracks
    repairs: list[dict[str, Any]]
    id_map: dict[int, int]


def prompt_video(
    video: str | Path | FrameSource,
    params: PromptParams,
    detector: Detector,
    *,
    backend: TrackingBackend | None = None,
    prompted_path: Path | None = None,
    video_id: str = "",
) -> VideoResult:
    """Prompt one video end to end (``backend``: built from ``params`` when not given).

    Raises ``video.VideoError`` (unreadable video) and ``NoInstancesError`` (naming why) for the
    caller to report; ``backends.sam2.DeviceFailure`` means the GPU is unusable for any later video.
    """
    own = backend is None
    backend = backend or build_backend(params)
    source = (
        VideoFrames(video, params.track_fps, params.max_frames) if isinstance(video, str | Path) else video
    )
    video_id = video_id or (Path(video).name if isinstance(video, str | Path) else "")
    try:
        return _prompt(source, params, detector, backend, prompted_path, video_id)
    finally:
        if isinstance(video, str | Path):
            source.close()  # type: ignore[attr-defined]
        if own:
            backend.close()


def _prompt(
    source: FrameSource,
    params: PromptParams,
    detector: Detector,
    backend: TrackingBackend,
    prompted_path: Path | None,
    video_id: str,
) -> VideoResult:
    t_start = time.perf_counter()
    clock = Stopwatch()
    fps = effective_track_fps(source)
    raw = backend.track(source, detector)
    t0 = time.perf_counter()
    rules = repair_rules(params, fps)
    done = _repair(raw, rules, params, backend)
    t0 = clock.add("repair_s", t0)
    completed, log = backend.complete(done.tracks, source, rules.merge.max_gap)
    done.tracks, done.repairs = completed, [*done.repairs, *log]
    t0 = clock.add("complete_s", t0)
    _fill(done, params, rules.merge.max_gap, source)
    t0 = clock.add("fill_s", t0)
    if not done.tracks:
        reason = empty_reason(video_id or "the video", raw, done.repairs, len(source.frame_indices), params)
        raise NoInstancesError(reason)
    sampling, sampled, written = render_video(
        source, done.tracks, params.render, params.sampling, prompted_path, fps
    )
    clock.add("render_s", t0)
    summary = video_summary(video_id, source, fps, raw, done, backend)
    summary.update(rendered_frames=written, sampled_frames=len(sampled))
    timings = {k: round(v, 4) for k, v in {**raw.timings, **clock.seconds}.items()}
    timings["total_s"] = round(time.perf_counter() - t_start, 4)
    table = tracks_table(done.tracks, source.frame_indices, source.meta.fps)
    return VideoResult(table, summary, sampling, sampled, written, timings)


def repair_rules(params: PromptParams, track_fps: float) -> RepairRules:
    """``prompt.repair`` in tracked frames."""
    p = params.repair
    merge = MergeRules(
        max_gap=max(0, round(p.merge_max_gap_s * track_fps)),
        min_iou=p.merge_min_iou,
        max_center_dist=p.merge_max_center_dist,
        window=p.merge_motion_window,
        max_overlap=max(0, round(p.merge_max_overlap_s * track_fps)),
    )
    return RepairRules(
        merge=merge, size_filter_ratio=p.size_filter_ratio, min_track_frames=p.min_track_frames
    )


def _repair(
    raw: RawTracking, rules: RepairRules, params: PromptParams, backend: TrackingBackend
) -> _Repaired:
    if not params.repair.enabled:
        final, id_map = renumber({t: f for t, f in raw.tracks.items() if f})
        return _Repaired(final, list(raw.events), id_map)
    result = repair_tracks(raw.tracks, rules, backend.similarity, raw.origin)
    return _Repaired(result.tracks, [*raw.events, *result.repairs], result.id_map)


def _fill(done: _Repaired, params: PromptParams, max_gap: int, source: FrameSource) -> None:
    if not params.repair.fill_gaps:
        return
    done.tracks, n = fill_occluded(done.tracks, max_gap, source.meta.height, source.meta.width)
    if n:
        done.repairs.append(
            {
                "kind": "fill_gaps",
                "filled_observations": n,
                "reason": f"gaps of at most {max_gap} frames inside a track, "
                "filled with the visible part of the interpolated box",
            }
        )


def video_summary(
    video_id: str,
    source: FrameSource,
    fps: float,
    raw: RawTracking,
    done: _Repaired,
    backend: TrackingBackend,
) -> dict[str, Any]:
    """The entry's ``summary.json``: deterministic facts only (no timings, host or date)."""
    n_tracked = len(source.frame_indices)
    duration = n_tracked / fps if fps > 0 else 0.0
    new_ids = count_new_ids(done.tracks)
    return {
        "video_id": video_id,
        "backend": backend.name,
        backend.name: raw.facts,
        "native_fps": source.meta.fps,
        "n_frames": source.meta.n_frames,
        "width": source.meta.width,
        "height": source.meta.height,
        "tracked_frames": n_tracked,
        "track_fps": fps,
        "instances": len(done.tracks),
        "raw_tracks": len(raw.tracks),
        "new_ids_after_start": new_ids,
        "churn": new_ids / duration if duration > 0 else 0.0,
        "repairs": done.repairs,
        "n_repairs": len(done.repairs),
        "id_map": {str(k): v for k, v in sorted(done.id_map.items())},
        "counts": raw.counts,
    }


def tracks_table(tracks: Tracks, frame_indices: Sequence[int], native_fps: float) -> pd.DataFrame:
    """The mask-database table of final tracks (one row per tracked frame and instance)."""
    rows = []
    for iid in sorted(tracks):
        for pos in sorted(tracks[iid]):
            o = tracks[iid][pos]
            frame = int(frame_indices[pos])
            rle = json.dumps(o.payload, sort_keys=True)
            rows.append((frame, frame / native_fps, iid, *o.box, o.area, o.score, rle))
    df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    df = df.astype(
        {"frame": "int64", "instance_id": "int64", "area": "int64", "time_s": "float64", "score": "float64"}
    )
    return df.sort_values(["frame", "instance_id"], kind="stable").reset_index(drop=True)


def empty_reason(
    video_id: str, raw: RawTracking, repairs: Sequence[dict[str, Any]], n_tracked: int, params: PromptParams
) -> str:
    """Why a video ends with no instance, naming the step that removed them and the key to change."""
    detections = int(raw.counts.get("detections", 0))
    if detections == 0:
        return (
            f"{video_id}: nothing detected in {n_tracked} tracked frames; "
            "check detector.weights / detector.classes / detector.conf for this data set"
        )
    found = f"{video_id}: the detector found {detections} box(es) in {n_tracked} tracked frame(s), but"
    if not raw.tracks:
        composites = int(raw.counts.get("composites", 0))
        dropped = (
            f"; {composites} were dropped as group boxes (prompt.detect.drop_composites)"
            if composites
            else ""
        )
        return f"{found} no track was started from them{dropped}"
    short = [r for r in repairs if r.get("kind") == "drop_short"]
    if not short:
        return f"{found} ID repair removed every track (see prompt.repair.size_filter_ratio)"
    minimum = params.repair.min_track_frames
    fix = (
        f"the video has only {n_tracked} tracked frame(s): prompt a longer video or lower "
        "prompt.repair.min_track_frames"
        if n_tracked < minimum
        else "lower prompt.repair.min_track_frames, or check the detector finds the objects on more frames"
    )
    longest = max(int(r["frames"]) for r in short)
    return (
        f"{found} every track was dropped as shorter than prompt.repair.min_track_frames = "
        f"{minimum} frames (the longest had {longest}); {fix}"
    )
