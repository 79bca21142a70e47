"""Prompt one video: detect -> segment/track with persistent IDs -> repair IDs -> overlay -> sample.

``prompt_video`` is the orchestration the prompt stage calls per video. Two tracking paths give the
same raw tracks (raw id -> tracked position -> observation with the mask as COCO RLE):

- ``track_keyframes`` (SAM2, or any ``Tracker``): frames are streamed in windows of ``p.window``
  positions that overlap by one frame, so masks carry across a boundary as mask prompts and peak
  memory does not grow with video length. Every ``p.redetect_every`` positions the detector runs;
  ``identity.match_keyframe`` keeps detections of tracked instances out and seeds the new ones with
  box prompts. After the forward pass, new instances are propagated **backward** from their keyframe
  (paper) until they vanish for ``redetect_every`` frames, reach frame 0, or run into another
  track's mask (then, if that track had ended, the two are merged: a recorded repair).
- ``track_detections`` (CPU): per-frame detection, box -> mask refinement for box-only detectors
  (``refine``), colour features (``appearance``), BoT-SORT/BYTETrack association
  (``tracker.DetectionTracker``); after repair, each track is followed past its first and last
  detection by colour along its motion (``extend``, the CPU stand-in for SAM2's propagation).

Departures from the official code: the keyframe duplicate test compares the detector's mask (or the
filled box for box-only models, against the tracked masks' filled boxes) instead of a SAM2
image-predictor mask; the predictor is built once per process; new instances are also propagated
backward; IDs are repaired (``identity.repair_tracks``); a GPU out-of-memory error is retried with
state offload and a halved window instead of restarting the process with a GPU reset.
"""

from __future__ import annotations

import bisect
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from stvg.config import PromptParams
from stvg.geometry import mask_to_box
from stvg.prompting.appearance import FEATURE_DIM, colour_feature
from stvg.prompting.composites import drop_composites
from stvg.prompting.extend import ExtendParams, extend_track_ends
from stvg.prompting.identity import (
    Observation,
    RepairParams,
    Tracks,
    box_mask,
    count_new_ids,
    fill_gaps,
    match_keyframe,
    renumber,
    repair_tracks,
)
from stvg.prompting.maskdb import TABLE_COLUMNS, decode_mask, encode_mask, rle_iou
from stvg.prompting.refine import refine_detections
from stvg.prompting.tracker import DetectionTracker, FrameMasks, Tracker
from stvg.prompting.video import FrameSource, VideoFrames
from stvg.records import Detection

log = logging.getLogger(__name__)


class Detector(Protocol):
    """What the engine needs of a detector (``detector.YoloDetector`` or a scripted fake)."""

    def detect_with_masks(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None = None
    ) -> list[list[tuple[Detection, np.ndarray | None]]]: ...


class NoInstancesError(RuntimeError):
    """Nothing was detected in the whole video (the video is reported, not written)."""


@dataclass
class RawTracking:
    """Raw (pre-repair) tracks of one video and what happened while tracking."""

    tracks: Tracks
    events: list[dict[str, Any]] = field(default_factory=list)  # keyframe decisions worth a record
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoResult:
    """Everything the mask database stores for one video."""

    table: pd.DataFrame  # maskdb.TABLE_COLUMNS
    summary: dict[str, Any]
    sampling: dict[str, Any]
    sampled_frames: np.ndarray  # (T, H, W, 3) uint8 RGB with red IDs
    rendered_frames: int  # frames in the prompted mp4
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step: never stored in the entry


# ----------------------------------------------------------------------------------------------- helpers


def _observe(
    mask: np.ndarray,
    score: float,
    label: int = -1,
    filled: bool = False,
    image: np.ndarray | None = None,
) -> Observation | None:
    box = mask_to_box(mask)
    if box is None:
        return None
    return Observation(
        box=box,
        area=int(mask.sum()),
        score=float(score),
        payload=encode_mask(mask),
        label=label,
        filled=filled,
        feature=colour_feature(image, mask) if image is not None else None,
    )


def _record(
    tracks: Tracks,
    position: int,
    masks: FrameMasks,
    skip: set[int] | None = None,
    labels: dict[int, int] | None = None,
    image: np.ndarray | None = None,
) -> None:
    for oid, (mask, score) in masks.items():
        if skip and oid in skip:
            continue
        obs = _observe(mask, score, (labels or {}).get(oid, -1), image=image)
        if obs is not None:
            tracks.setdefault(oid, {}).setdefault(position, obs)


def _keyframe_masks(
    dets: Sequence[tuple[Detection, np.ndarray | None]], current: FrameMasks, h: int, w: int
) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Detection masks and tracked masks in comparable form (filled boxes when the detector has no masks)."""
    if dets and all(m is not None for _, m in dets):
        return [np.asarray(m, dtype=bool) for _, m in dets], {i: m for i, (m, _) in current.items()}
    det_masks = [box_mask(d.box, h, w) for d, _ in dets]
    existing = {}
    for i, (m, _) in current.items():
        b = mask_to_box(m)
        if b is not None:
            existing[i] = box_mask(b, h, w)
    return det_masks, existing


def _keyframes(start: int, stop: int, every: int) -> list[int]:
    first = ((start + every - 1) // every) * every
    return list(range(first, stop, every))


# ----------------------------------------------------------------------------------------------- keyframe path


def track_keyframes(
    source: FrameSource,
    detector: Detector,
    make_tracker: Callable[[], Tracker],
    p: PromptParams,
    *,
    window: int | None = None,
    force_offload: bool = False,
) -> RawTracking:
    """Windowed propagation with re-detection every ``p.redetect_every`` positions and backward fill."""

    def new_tracker() -> Tracker:
        t = make_tracker()
        if force_offload and hasattr(t, "offload"):
            t.offload = True  # OOM retry: keep frames and state on the CPU
        return t

    n = len(source.frame_indices)
    every, win = p.redetect_every, max(2, window or p.window)
    h, w = source.meta.height, source.meta.width
    tracks: Tracks = {}
    events: list[dict[str, Any]] = []
    suppressed: set[int] = set()
    new_at: dict[int, dict[int, np.ndarray]] = {}  # keyframe -> {new id: mask}, for the backward pass
    timings = {"decode_s": 0.0, "detect_s": 0.0, "propagate_s": 0.0, "backward_s": 0.0}
    counts = {"keyframes": 0, "detections": 0, "composites": 0, "duplicates": 0, "replaced": 0}
    next_id = 1
    carried: FrameMasks = {}
    fwd = new_tracker()
    s = 0
    try:
        while s < n:
            a = s - 1 if carried else s
            e = min(n, a + win)
            t0 = time.perf_counter()
            frames = source.read(a, e)
            timings["decode_s"] += time.perf_counter() - t0
            fwd.start(frames, first_frame=a)
            for oid, (m, _) in carried.items():
                fwd.add_mask(a, oid, m)
            current: FrameMasks = dict(carried)
            pos = s
            while pos < e:
                later = _keyframes(pos, e, every)
                stop = later[0] if later else e - 1
                t0 = time.perf_counter()
                for f, masks in fwd.propagate(pos, stop - pos + 1):
                    current = {k: v for k, v in masks.items() if k not in suppressed}
                    _record(tracks, f, current)
                timings["propagate_s"] += time.perf_counter() - t0
                pos = stop + 1
                if stop % every:
                    continue
                t0 = time.perf_counter()
                dets = detector.detect_with_masks([frames[stop - a]], [source.frame_indices[stop]])[0]
                timings["detect_s"] += time.perf_counter() - t0
                counts["keyframes"] += 1
                counts["detections"] += len(dets)
                if p.drop_composites:
                    dets, n_composite = drop_composites(dets)
                    counts["composites"] += n_composite
                det_masks, existing = _keyframe_masks(dets, current, h, w)
                decision = match_keyframe(
                    det_masks,
                    existing,
                    id_iou=p.id_iou,
                    containment=p.containment,
                    containment_ratio=p.containment_ratio,
                    scores=[d.score for d, _ in dets],
                )
                counts["duplicates"] += len(decision.duplicates)
                replaced_by = {i: old for old, i in decision.replaced.items()}
                for i in decision.new:
                    oid, next_id = next_id, next_id + 1
                    t0 = time.perf_counter()
                    mask = fwd.add_box(stop, oid, dets[i][0].box)
                    timings["propagate_s"] += time.perf_counter() - t0
                    if not mask.any():
                        mask = det_masks[i] if dets[i][1] is not None else box_mask(dets[i][0].box, h, w)
                    current[oid] = (mask, float(dets[i][0].score))
                    _record(tracks, stop, {oid: current[oid]})
                    if p.backward and stop > 0:
                        new_at.setdefault(stop, {})[oid] = mask
                    if i in replaced_by:
                        old = replaced_by[i]
                        suppressed.add(old)
                        current.pop(old, None)
                        tracks.get(old, {}).pop(stop, None)  # the old ID is deleted from the keyframe on
                        counts["replaced"] += 1
                        events.append(
                            {
                                "kind": "containment_replace",
                                "frame_position": stop,
                                "removed": old,
                                "new": oid,
                                "reason": "new mask contains / is contained by a tracked one and is larger",
                            }
                        )
            carried = {k: v for k, v in current.items() if k not in suppressed}
            fwd.reset()
            s = e
        t0 = time.perf_counter()
        for k in sorted(new_at):
            _propagate_backward(source, new_tracker(), k, new_at[k], tracks, events, p, win)
        timings["backward_s"] = time.perf_counter() - t0
    finally:
        fwd.close()
    return RawTracking(tracks=tracks, events=events, counts=counts, timings=timings)


def _propagate_backward(
    source: FrameSource,
    tracker: Tracker,
    keyframe: int,
    seeds: dict[int, np.ndarray],
    tracks: Tracks,
    events: list[dict[str, Any]],
    p: PromptParams,
    win: int,
) -> None:
    """Fill new instances back from their keyframe to their first appearance."""
    alive = {oid: 0 for oid in seeds}  # id -> consecutive positions without a mask
    masks = dict(seeds)
    last_seen = dict.fromkeys(seeds, keyframe)
    pos = keyframe
    others = [t for t in tracks if t not in seeds]
    try:
        while pos > 0 and alive:
            a = max(0, pos - win + 1)
            tracker.start(source.read(a, pos + 1), first_frame=a)
            for oid in alive:
                tracker.add_mask(pos, oid, masks[oid])
            for f, out in tracker.propagate(pos - 1, pos - a, reverse=True):
                for oid in list(alive):
                    if oid not in out:
                        alive[oid] += 1
                        if alive[oid] >= p.redetect_every:
                            del alive[oid]
                        continue
                    alive[oid] = 0
                    mask, score = out[oid]
                    obs = _observe(mask, score)
                    if obs is None:
                        continue
                    hit = _overlapping_track(tracks, others, f, obs, p.id_iou)
                    if hit is not None:
                        del alive[oid]
                        if max(tracks[hit]) < keyframe and oid in tracks:
                            tracks[hit].update(
                                {k: v for k, v in tracks.pop(oid).items() if k not in tracks[hit]}
                            )
                            events.append(
                                {
                                    "kind": "backward_merge",
                                    "track": hit,
                                    "merged": oid,
                                    "frame_position": f,
                                    "reason": f"instance {oid} traced backward onto instance {hit}, which had ended",
                                }
                            )
                        continue
                    tracks.setdefault(oid, {}).setdefault(f, obs)
                    masks[oid], last_seen[oid] = mask, f
                if not alive:
                    break
            tracker.reset()
            # only instances visible on the boundary frame can be re-prompted in the previous window
            alive = {oid: c for oid, c in alive.items() if last_seen.get(oid) == a}
            pos = a
    finally:
        tracker.close()


def _overlapping_track(
    tracks: Tracks, ids: Sequence[int], f: int, obs: Observation, iou: float
) -> int | None:
    for t in ids:
        other = tracks.get(t, {}).get(f)
        if other is not None and rle_iou(obs.payload, other.payload) >= iou:
            return t
    return None


# ----------------------------------------------------------------------------------------------- CPU path


def track_detections(
    source: FrameSource, detector: Detector, p: PromptParams, *, batch: int = 16
) -> RawTracking:
    """Per-frame detection + BYTETrack/BoT-SORT association, with late-confirmed tracks back-filled."""
    tracker = DetectionTracker(
        p.tracker, class_aware=p.class_aware_tracking, appearance_gate=p.appearance_gate
    )
    tracks: Tracks = {}
    timings = {"decode_s": 0.0, "detect_s": 0.0, "refine_s": 0.0, "associate_s": 0.0}
    counts = {"detections": 0, "composites": 0, "refined": 0, "backfilled": 0}
    n = len(source.frame_indices)
    for a in range(0, n, batch):
        t0 = time.perf_counter()
        frames = source.read(a, min(n, a + batch))
        t1 = time.perf_counter()
        dets = detector.detect_with_masks(frames, source.frame_indices[a : a + len(frames)])
        t2 = time.perf_counter()
        refine_before = timings["refine_s"]
        for k, (frame, fd) in enumerate(zip(frames, dets, strict=True)):
            counts["detections"] += len(fd)
            if p.drop_composites:
                fd, n_composite = drop_composites(fd)
                counts["composites"] += n_composite
            if p.box_refine == "grabcut":
                t3 = time.perf_counter()
                fd, n_refined = refine_detections(frame, fd)
                counts["refined"] += n_refined
                timings["refine_s"] += time.perf_counter() - t3
            feats = np.zeros((len(fd), FEATURE_DIM), dtype=np.float32)  # zero = unknown appearance
            for i, (_, m) in enumerate(fd):
                f = colour_feature(frame, m) if m is not None else None
                if f is not None:
                    feats[i] = f
            masks, labels, backfill = tracker.update(a + k, frame, fd, feats)
            _record(tracks, a + k, masks, labels=labels, image=frame)
            for pos, oid, m, score, label in backfill:
                seen = frames[pos - a] if a <= pos < a + len(frames) else None
                _record(tracks, pos, {oid: (m, score)}, labels={oid: label}, image=seen)
            counts["backfilled"] += len(backfill)
        timings["decode_s"] += t1 - t0
        timings["detect_s"] += t2 - t1
        timings["associate_s"] += time.perf_counter() - t2 - timings["refine_s"] + refine_before
    return RawTracking(tracks=tracks, counts=counts, timings=timings)


# ----------------------------------------------------------------------------------------------- whole video


def repair_params(p: PromptParams, track_fps: float) -> RepairParams:
    """``PromptParams`` repair keys in tracked frames."""
    return RepairParams(
        max_gap_frames=max(0, round(p.merge_max_gap_s * track_fps)),
        min_iou=p.merge_min_iou,
        max_center_dist=p.merge_max_center_dist,
        motion_window=p.merge_motion_window,
        size_filter_ratio=p.size_filter_ratio,
        min_track_frames=p.min_track_frames,
        appearance_gate=p.appearance_gate,
        max_overlap_frames=max(0, round(p.merge_max_overlap_s * track_fps)),
        blob_ratio=p.split_blob_ratio,
    )


def fill_occluded(tracks: Tracks, max_gap: int, height: int, width: int) -> tuple[Tracks, int]:
    """Fill each track's short gaps (``identity.fill_gaps``) with the visible part of the filled box.

    A gap is usually an occlusion: the filled box minus the masks observed on that frame (the shapes
    in front, which the detector did see) is what remains visible, so the filled box is the tight box
    of that remainder, like the ground truth's visible-part boxes. A filled frame with nothing left
    visible stays empty. Filled observations carry score 0 and ``filled=True``.
    """
    boxes = fill_gaps(tracks, max_gap)
    if not boxes:
        return tracks, 0
    observed: dict[int, list[Any]] = {}  # frame -> RLEs of observed masks
    for frames in tracks.values():
        for f, o in frames.items():
            if not o.filled:
                observed.setdefault(f, []).append(o.payload)
    out: Tracks = {tid: dict(frames) for tid, frames in tracks.items()}
    n = 0
    for tid, per_frame in boxes.items():
        label = out[tid][min(out[tid])].label
        for f, box in per_frame.items():
            visible = box_mask(box, height, width)
            for rle in observed.get(f, []):
                visible &= ~decode_mask(rle)
            obs = _observe(visible, 0.0, label, filled=True)
            if obs is not None:
                out[tid][f] = obs
                n += 1
    return {tid: dict(sorted(frames.items())) for tid, frames in out.items()}, n


class _FrameCache:
    """Random access to a source's tracked frames, chunk by chunk, holding a few chunks at a time."""

    def __init__(self, source: FrameSource, chunk: int = 32, keep: int = 4) -> None:
        self.source, self.chunk, self.keep = source, chunk, keep
        self._chunks: dict[int, list[np.ndarray]] = {}

    def get(self, position: int) -> np.ndarray:
        key = position // self.chunk
        if key not in self._chunks:
            if len(self._chunks) >= self.keep:
                del self._chunks[next(iter(self._chunks))]
            self._chunks[key] = self.source.read(key * self.chunk, (key + 1) * self.chunk)
        return self._chunks[key][position - key * self.chunk]


def effective_track_fps(source: FrameSource) -> float:
    """Tracked frames per second of video (native fps unless ``track_fps`` thinned them)."""
    idx = source.frame_indices
    if len(idx) < 2:
        return source.meta.fps
    return source.meta.fps * (len(idx) - 1) / max(1, idx[-1] - idx[0])


def tracks_table(tracks: Tracks, frame_indices: Sequence[int], native_fps: float) -> pd.DataFrame:
    """The mask-database table of final tracks (one row per tracked frame and instance)."""
    rows = []
    for iid in sorted(tracks):
        for pos in sorted(tracks[iid]):
            o = tracks[iid][pos]
            frame = int(frame_indices[pos])
            x1, y1, x2, y2 = o.box
            rows.append(
                (
                    frame,
                    frame / native_fps,
                    iid,
                    x1,
                    y1,
                    x2,
                    y2,
                    o.area,
                    o.score,
                    json.dumps(o.payload, sort_keys=True),
                )
            )
    df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    df = df.astype(
        {"frame": "int64", "instance_id": "int64", "area": "int64", "time_s": "float64", "score": "float64"}
    )
    return df.sort_values(["frame", "instance_id"], kind="stable").reset_index(drop=True)


def render(
    source: FrameSource,
    tracks: Tracks,
    p: PromptParams,
    prompted_path: Path | None,
    fps: float,
) -> tuple[dict[str, Any], np.ndarray, int]:
    """Draw IDs on every tracked frame (mp4) and collect the sampled frames the policy sees."""
    import cv2

    from stvg.prompting.render import draw_ids, write_video
    from stvg.prompting.sampling import plan_sampling

    idx = source.frame_indices
    meta = source.meta
    plan = plan_sampling(idx[-1] + 1, meta.fps, meta.width, meta.height, p)
    wanted: dict[int, list[int]] = {}  # tracked position -> sample slots showing it
    for slot, native in enumerate(plan.frame_indices):
        pos = max(0, bisect.bisect_right(idx, native) - 1)
        wanted.setdefault(pos, []).append(slot)
    by_pos: dict[int, dict[int, Any]] = {}
    for iid, frames in tracks.items():
        for pos, o in frames.items():
            by_pos.setdefault(pos, {})[iid] = o.payload
    sampled = np.zeros((plan.n_samples, plan.out_height, plan.out_width, 3), dtype=np.uint8)

    def frames_out():
        chunk = max(8, p.window)
        for a in range(0, len(idx), chunk):
            for k, frame in enumerate(source.read(a, min(len(idx), a + chunk))):
                pos = a + k
                inst = {i: decode_mask(r) for i, r in by_pos.get(pos, {}).items()}
                drawn = draw_ids(frame, inst, p, inplace=True)
                for slot in wanted.get(pos, []):
                    sampled[slot] = cv2.resize(
                        drawn, (plan.out_width, plan.out_height), interpolation=cv2.INTER_AREA
                    )
                yield drawn

    if prompted_path is not None:
        written = write_video(prompted_path, frames_out(), fps, (meta.width, meta.height))
    else:
        written = sum(1 for _ in frames_out())
    return plan.to_dict(), sampled, written


def prompt_video(
    video: str | Path | FrameSource,
    detector: Detector,
    p: PromptParams,
    *,
    make_tracker: Callable[[], Tracker] | None = None,
    prompted_path: Path | None = None,
    video_id: str = "",
) -> VideoResult:
    """Prompt one video end to end; raises ``video.VideoError`` / ``NoInstancesError`` for the stage to report."""
    t_start = time.perf_counter()
    source = VideoFrames(video, p.track_fps, p.max_frames) if isinstance(video, str | Path) else video
    try:
        fps = effective_track_fps(source)
        if p.backend == "sam2" or make_tracker is not None:
            if make_tracker is None:
                raise ValueError("the sam2 backend needs make_tracker (see sam2_tracker.Sam2Tracker)")
            factory = make_tracker
            raw = _with_oom_retry(
                lambda window, offload: track_keyframes(
                    source, detector, factory, p, window=window, force_offload=offload
                ),
                p,
            )
        else:
            raw = track_detections(source, detector, p)
        t0 = time.perf_counter()
        rp = repair_params(p, fps)
        if p.repair:
            repaired = repair_tracks(raw.tracks, rp)
            final, repairs, id_map = repaired.tracks, list(raw.events) + repaired.repairs, repaired.id_map
        else:
            final, id_map = renumber({t: f for t, f in raw.tracks.items() if f})
            repairs = list(raw.events)
        t_extend = time.perf_counter()
        if p.extend_ends and p.backend == "cpu" and make_tracker is None:
            final, extended = extend_track_ends(
                final,
                _FrameCache(source).get,
                len(source.frame_indices),
                encode_mask,
                ExtendParams(
                    max_frames=rp.max_gap_frames,
                    gate=p.appearance_gate or 1.0,
                    hidden_fraction=p.extend_hidden_fraction,
                ),
                decode=decode_mask,
            )
            repairs.extend(extended)
        t_extend = time.perf_counter() - t_extend
        if p.fill_gaps:
            final, n_filled = fill_occluded(final, rp.max_gap_frames, source.meta.height, source.meta.width)
            if n_filled:
                repairs.append(
                    {
                        "kind": "fill_gaps",
                        "filled_observations": n_filled,
                        "reason": f"gaps of at most {rp.max_gap_frames} frames inside a track, "
                        "filled with the visible part of the interpolated box",
                    }
                )
        t_repair = time.perf_counter() - t0
        if not final:
            raise NoInstancesError(
                empty_reason(video_id or str(video), raw, repairs, len(source.frame_indices), p)
            )
        t0 = time.perf_counter()
        sampling, sampled, written = render(source, final, p, prompted_path, fps)
        t_render = time.perf_counter() - t0
        n_tracked = len(source.frame_indices)
        duration = n_tracked / fps if fps > 0 else 0.0
        new_ids = count_new_ids(final)
        total = time.perf_counter() - t_start
        timings = {**{k: round(v, 4) for k, v in raw.timings.items()}}
        timings.update(
            repair_s=round(t_repair - t_extend, 4),
            extend_s=round(t_extend, 4),
            render_s=round(t_render, 4),
            total_s=round(total, 4),
        )
        summary = {
            "video_id": video_id,
            "backend": p.backend,
            "native_fps": source.meta.fps,
            "n_frames": source.meta.n_frames,
            "width": source.meta.width,
            "height": source.meta.height,
            "tracked_frames": n_tracked,
            "track_fps": fps,
            "instances": len(final),
            "raw_tracks": len(raw.tracks),
            "new_ids_after_start": new_ids,
            "churn": new_ids / duration if duration > 0 else 0.0,
            "repairs": repairs,
            "n_repairs": len(repairs),
            "id_map": {str(k): v for k, v in sorted(id_map.items())},
            "counts": raw.counts,
            "rendered_frames": written,
            "sampled_frames": len(sampled),
        }
        table = tracks_table(final, source.frame_indices, source.meta.fps)
        return VideoResult(
            table=table,
            summary=summary,
            sampling=sampling,
            sampled_frames=sampled,
            rendered_frames=written,
            timings=timings,
        )
    finally:
        close = getattr(source, "close", None)
        if close is not None and isinstance(video, str | Path):
            close()


def empty_reason(
    video_id: str, raw: RawTracking, repairs: Sequence[dict[str, Any]], n_tracked: int, p: PromptParams
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
        dropped = f"; {composites} were dropped as group boxes (prompt.drop_composites)" if composites else ""
        return f"{found} no track was started from them{dropped}"
    short = [r for r in repairs if r.get("kind") == "drop_short"]
    if short:
        longest = max(int(r["frames"]) for r in short)
        fix = (
            f"the video has only {n_tracked} tracked frame(s): prompt a longer video or lower "
            "prompt.min_track_frames"
            if n_tracked < p.min_track_frames
            else "lower prompt.min_track_frames, or check the detector finds the objects on more frames"
        )
        return (
            f"{found} every track was dropped as shorter than prompt.min_track_frames = "
            f"{p.min_track_frames} frames (the longest had {longest}); {fix}"
        )
    return f"{found} ID repair removed every track (see prompt.size_filter_ratio)"


def _with_oom_retry(
    run: Callable[[int, bool], RawTracking], p: PromptParams, attempts: int = 3
) -> RawTracking:
    """Run the SAM2 path; on GPU out-of-memory retry with state offload and a halved window, then give up."""
    window, offload = p.window, p.offload_to_cpu
    for attempt in range(attempts):
        try:
            return run(window, offload)
        except RuntimeError as exc:  # torch.OutOfMemoryError subclasses RuntimeError
            if "out of memory" not in str(exc).lower() or attempt == attempts - 1 or window <= 2:
                raise
            _empty_cuda_cache()
            window, offload = max(2, window // 2), True
            log.warning("GPU out of memory; retrying with window=%d and state offload", window)
    raise AssertionError("unreachable")


def _empty_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
