"""The synthetic CPU stand-in: a tracking backend for flat-coloured shapes, so the embedded default runs
end to end on a laptop or in CI without SAM2 weights or a GPU.

What it is: per-frame YOLO detections, GrabCut masks for box-only detections (``grabcut``), BoT-SORT
or BYTETrack association with a colour-histogram veto (``tracker``, ``colour``), group boxes cut out
of tracks (``blobs``), and after repair each track walked past its ends and through its gaps by
colour along its motion (``extend``: the stand-in for SAM2's propagation).

What it is not: a tracker for real video. Colour histograms are weak re-identifiers on cluttered
footage, GrabCut is no SAM, and every rule here was measured on the synthetic benchmark's flat
colours. It is **frozen**: no rule is added for a synthetic failure case; its identity quality is
reported on synthetic seeds none of its rules were tuned on (``benchmarks/bench_prompt_quality.py
--held-out``). The paper's path is the ``sam2`` backend.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from stvg.config import DetectParams, SyntheticCpuParams
from stvg.prompting.backends.base import Detector, RawTracking, Stopwatch, observe
from stvg.prompting.backends.synthetic_cpu.blobs import split_blobs
from stvg.prompting.backends.synthetic_cpu.colour import FEATURE_DIM, ColourSimilarity, colour_feature
from stvg.prompting.backends.synthetic_cpu.extend import ExtendParams, extend_track_ends
from stvg.prompting.backends.synthetic_cpu.grabcut import refine_detections
from stvg.prompting.backends.synthetic_cpu.tracker import DetectionTracker
from stvg.prompting.composites import prompts_of
from stvg.prompting.identity import Tracks
from stvg.prompting.maskdb import decode_mask, encode_mask
from stvg.prompting.video import FrameCache, FrameSource
from stvg.records import Detection

DETECT_BATCH = 16  # frames per detector call


class SyntheticCpuBackend:
    """``TrackingBackend`` of the stand-in (see the module docstring)."""

    name = "synthetic_cpu"

    def __init__(self, p: SyntheticCpuParams, detect: DetectParams) -> None:
        self.p, self.detect = p, detect
        self.similarity = ColourSimilarity(p.appearance_gate) if p.appearance_gate > 0 else None

    def track(self, source: FrameSource, detector: Detector) -> RawTracking:
        """Per-frame detection + association, late-confirmed tracks back-filled, group boxes cut out."""
        tracker = DetectionTracker(
            self.p.tracker, class_aware=self.p.class_aware, appearance_gate=self.p.appearance_gate
        )
        raw = RawTracking(
            tracks={}, counts=dict.fromkeys(("detections", "composites", "refined", "backfilled"), 0)
        )
        clock = Stopwatch("decode_s", "detect_s", "refine_s", "associate_s")
        n = len(source.frame_indices)
        for a in range(0, n, DETECT_BATCH):
            t0 = time.perf_counter()
            frames = source.read(a, min(n, a + DETECT_BATCH))
            t0 = clock.add("decode_s", t0)
            dets = detector.detect_with_masks(frames, source.frame_indices[a : a + len(frames)])
            clock.add("detect_s", t0)
            for k, (frame, found) in enumerate(zip(frames, dets, strict=True)):
                self._associate(tracker, a + k, frame, found, frames, a, raw, clock)
        if self.p.split_blob_ratio > 0:
            raw.tracks, log, raw.origin = split_blobs(raw.tracks, self.p.split_blob_ratio)
            raw.events.extend(log)
        raw.timings = clock.seconds
        return raw

    def _associate(
        self,
        tracker: DetectionTracker,
        position: int,
        frame: np.ndarray,
        found: list[tuple[Detection, np.ndarray | None]],
        batch: list[np.ndarray],
        batch_start: int,
        raw: RawTracking,
        clock: Stopwatch,
    ) -> None:
        """One frame: prompts -> masks -> colour features -> association; records the tracks."""
        raw.counts["detections"] += len(found)
        found, n_composite = prompts_of(found, self.detect)
        raw.counts["composites"] += n_composite
        t0 = time.perf_counter()
        if self.p.box_refine == "grabcut":
            found, n_refined = refine_detections(frame, found)
            raw.counts["refined"] += n_refined
        t0 = clock.add("refine_s", t0)
        feats = np.zeros((len(found), FEATURE_DIM), dtype=np.float32)  # zero = unknown appearance
        for i, (_, m) in enumerate(found):
            f = colour_feature(frame, m) if m is not None else None
            if f is not None:
                feats[i] = f
        masks, labels, backfill = tracker.update(position, frame, found, feats)
        clock.add("associate_s", t0)
        _record(
            raw.tracks, position, {oid: (m, s, labels.get(oid, -1)) for oid, (m, s) in masks.items()}, frame
        )
        for pos, oid, m, score, label in backfill:
            seen = batch[pos - batch_start] if batch_start <= pos < batch_start + len(batch) else None
            _record(raw.tracks, pos, {oid: (m, score, label)}, seen)
        raw.counts["backfilled"] += len(backfill)

    def complete(
        self, tracks: Tracks, source: FrameSource, max_gap: int
    ) -> tuple[Tracks, list[dict[str, Any]]]:
        """Each repaired track followed past its ends and into its gaps by colour (``extend``)."""
        if not self.p.extend_ends:
            return tracks, []
        extend = ExtendParams(
            max_frames=max_gap,
            gate=self.p.appearance_gate or 1.0,
            hidden_fraction=self.p.extend_hidden_fraction,
        )
        frames = FrameCache(source)
        return extend_track_ends(
            tracks, frames.get, len(source.frame_indices), encode_mask, extend, decode=decode_mask
        )

    def close(self) -> None:
        """Nothing held between videos."""


def _record(
    tracks: Tracks, position: int, masks: dict[int, tuple[np.ndarray, float, int]], image: np.ndarray | None
) -> None:
    """Observations with their colour feature (when the frame is at hand); the first one of a frame wins."""
    for oid, (mask, score, label) in masks.items():
        feature = colour_feature(image, mask) if image is not None else None
        obs = observe(mask, score, label, feature=feature)
        if obs is not None:
            tracks.setdefault(oid, {}).setdefault(position, obs)
