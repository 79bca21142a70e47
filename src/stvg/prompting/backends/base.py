"""The plug-in point of prompting: what a tracking backend is, and what it hands the engine.

A backend turns a video's frames and a detector into **raw tracks** (raw id -> tracked position ->
``Observation`` carrying the mask as COCO RLE) and a record of what it decided. The engine then runs
the shared steps on them (``identity`` repair, gap filling, rendering) with no knowledge of which
backend ran. A backend brings:

- ``track(source, detector)``: the raw tracks of one video, from fresh per-video state (tracker
  objects, sessions, RNG), so an entry is a pure function of its inputs;
- ``similarity``: its notion of appearance for repair's merges (``identity.Similarity``), or None;
- ``complete(tracks, source, max_gap)``: after repair, what its own propagation could not do
  (the synthetic stand-in walks track ends by colour; SAM2 already propagated: nothing);
- ``close()``: release models.

Its params type, the code files that make up its cache key and the factory live in
``backends.BACKENDS`` (a ``BackendSpec`` per name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stvg.geometry import mask_to_box
from stvg.prompting.identity import Observation, Similarity, Tracks
from stvg.prompting.maskdb import encode_mask
from stvg.prompting.video import FrameSource
from stvg.records import Detection

FrameMasks = dict[int, tuple[np.ndarray, float]]  # instance id -> ((H, W) bool mask, score)


class Detector(Protocol):
    """What backends need of a detector (``detector.YoloDetector`` or a scripted fake)."""

    def detect_with_masks(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None = None
    ) -> list[list[tuple[Detection, np.ndarray | None]]]: ...


@dataclass
class RawTracking:
    """Raw (pre-repair) tracks of one video and what happened while tracking."""

    tracks: Tracks
    events: list[dict[str, Any]] = field(default_factory=list)  # decisions worth a record in the summary
    counts: dict[str, Any] = field(default_factory=dict)  # deterministic counters (summary)
    timings: dict[str, float] = field(default_factory=dict)  # seconds (run report, never the summary)
    origin: dict[int, int] = field(
        default_factory=dict
    )  # raw id -> the tracker's id, where the backend split
    facts: dict[str, Any] = field(
        default_factory=dict
    )  # backend facts for the entry's summary (deterministic)


class TrackingBackend(Protocol):
    """One way of turning a video into raw tracks (see the module docstring)."""

    name: str
    similarity: Similarity | None

    def track(self, source: FrameSource, detector: Detector) -> RawTracking: ...

    def complete(
        self, tracks: Tracks, source: FrameSource, max_gap: int
    ) -> tuple[Tracks, list[dict[str, Any]]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendSpec:
    """A backend's registration: its name (= ``prompt.backend`` = its params section), its code
    (paths under ``stvg/prompting/``, hashed into its cache keys) and how to build it."""

    name: str
    code: tuple[str, ...]
    build: Callable[..., TrackingBackend]
    non_output_keys: tuple[str, ...] = ()  # its params that change speed or memory only, not the entry

    def code_files(self, package: Path) -> list[Path]:
        """Its code files under the ``stvg/prompting`` folder ``package``."""
        return python_files(package, self.code)


def python_files(package: Path, paths: Sequence[str]) -> list[Path]:
    """The ``.py`` files of ``paths`` (files or folders relative to ``package``), sorted."""
    out: list[Path] = []
    for rel in paths:
        path = package / rel
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return sorted(out)


def observe(
    mask: np.ndarray, score: float, label: int = -1, *, filled: bool = False, feature: Any = None
) -> Observation | None:
    """An ``Observation`` of a bool (H, W) mask (RLE payload, tight box); None for an empty mask."""
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
        feature=feature,
    )


def record(tracks: Tracks, position: int, masks: FrameMasks, labels: dict[int, int] | None = None) -> None:
    """Add each instance's mask on ``position`` to ``tracks`` (first observation of a frame wins)."""
    for oid, (mask, score) in masks.items():
        obs = observe(mask, score, (labels or {}).get(oid, -1))
        if obs is not None:
            tracks.setdefault(oid, {}).setdefault(position, obs)


class Stopwatch:
    """Accumulates seconds per step name (for the run report)."""

    def __init__(self, *names: str) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)

    def add(self, name: str, since: float) -> float:
        """Add the time since ``since`` (a ``time.perf_counter()`` value) to ``name``; returns now."""
        import time

        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - since
        return now
