"""The one place grounding touches the prompting engine and the mask database: raw video -> entry.

The engine (``stvg.prompting.engine.prompt_video``) and the database (``stvg.prompting.maskdb``) are
used as a black box through their public entries, with the prompt stage's own entry key (output
params, weight hashes, prompting code: ``stvg.stages.prompt``). An entry written here is therefore
what the prompt stage writes for the same video and configuration, and a video already in the
database is never prompted again (a second query on one video, or many queries in a batch).
Grounding needs no prompted mp4, so none is encoded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stvg.config import Params

Box = tuple[float, float, float, float]
Progress = Callable[[int, int], None]  # (tracked frames done, tracked frames in all)


class PromptingError(RuntimeError):
    """The video decoded but prompting it failed (e.g. nothing detected); the message says why."""


@dataclass(frozen=True)
class VideoInfo:
    """Native properties of a video file."""

    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def prompting_code_hash(backend: str) -> str:
    """Hash of the code that decides what a mask-database entry of ``backend`` holds (the prompt stage's)."""
    from stvg.prompting.backends import code_hash

    return code_hash(backend)


def video_hash(path: Path) -> str:
    """SHA-256 of the video bytes: the video's identity in the database."""
    from stvg.prompting.video import content_hash

    return content_hash(path)


def probe_video(path: Path, name: str = "") -> VideoInfo:
    """fps, frame count and size; raises ``stvg.grounding.inputs.GroundingInputError`` for a non-video.

    ``name`` replaces the file's path in the message (an upload's temporary file means nothing to
    the caller).
    """
    from stvg.grounding.inputs import GroundingInputError
    from stvg.prompting.video import VideoError, probe

    try:
        meta = probe(path)
    except VideoError as exc:
        cause = str(exc).replace(f"{path}: ", "")
        raise GroundingInputError(
            f"video {name or path} is not a decodable video ({cause}); send a complete video file "
            "(mp4, avi, mkv, ... anything OpenCV/FFmpeg decodes)"
        ) from exc
    return VideoInfo(fps=meta.fps, n_frames=meta.n_frames, width=meta.width, height=meta.height)


class PromptedVideo:
    """One video's entry in a mask database: the tracked instances and the frames the policy sees."""

    def __init__(self, db: Any, video_id: str, timings: dict[str, float]) -> None:
        self._db, self.video_id, self.timings = db, video_id, timings

    def policy_input(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The sampled frames with red IDs, (T, H, W, 3) uint8 RGB, and their sampling record."""
        return self._db.sampled_frames(self.video_id), self._db.sampling(self.video_id)

    def instance_ids(self) -> list[int]:
        return self._db.instance_ids(self.video_id)

    def tube(self, instance_id: int, start_s: float, end_s: float) -> dict[int, Box]:
        """frame -> xyxy of one instance over the tracked frames in ``[start_s, end_s]``."""
        return self._db.tube(self.video_id, instance_id, start_s, end_s)

    def boxes_by_frame(self) -> dict[int, dict[int, Box]]:
        return self._db.boxes_by_frame(self.video_id)


class VideoPrompter:
    """Prompts raw videos with one prompting configuration into a mask database (the cache folder).

    The detector and the tracking backend (SAM2's model) load once, on first use; one video is
    prompted at a time (``lock``), as the database index is rewritten after each video.
    """

    def __init__(self, params: Params, detector_weights: Path, cache_dir: Path, device: str = "cpu") -> None:
        from stvg.prompting.maskdb import MaskDB
        from stvg.stages import prompt as stage

        self.params, self.device = params, device
        self.detector_weights = Path(detector_weights)
        self.db = MaskDB(cache_dir)
        key = stage.key_parts(params, self.detector_weights, device)
        self._key_parts = (key["params"], key["weights"], key["code"])
        self._detector: Any = None
        self._backend: Any = None
        self.lock = threading.RLock()

    def load(self) -> None:
        """Load the detector (and the SAM2 predictor for that backend) now rather than on first use."""
        if self._detector is not None:
            return
        from stvg.prompting.backends import build_backend
        from stvg.prompting.detector import YoloDetector

        det = self.params.detector
        self._detector = YoloDetector(
            self.detector_weights,
            conf=det.conf,
            classes=det.classes,
            imgsz=det.imgsz,
            device=self.device,
            threads=det.threads,
        )
        self._backend = build_backend(self.params.prompt, device=self.device, seed=self.params.seed)

    def entry_key(self, content: str) -> str:
        """The mask-database key of a video with content hash ``content`` under this configuration."""
        from stvg.prompting.maskdb import entry_key

        return entry_key(content, *self._key_parts)

    def prompt(
        self, path: Path, video_id: str, content: str, progress: Progress | None = None
    ) -> PromptedVideo:
        """The video's entry, prompting it first unless the database already holds it."""
        with self.lock:
            key = self.entry_key(content)
            if self.db.key(video_id) == key:
                return PromptedVideo(self.db, video_id, {"decode_s": 0.0, "prompt_s": 0.0})
            self.load()
            timings = self._build_entry(path, video_id, key, progress)
            return PromptedVideo(self.db, video_id, timings)

    def _build_entry(
        self, path: Path, video_id: str, key: str, progress: Progress | None
    ) -> dict[str, float]:
        from stvg.grounding.inputs import GroundingInputError
        from stvg.prompting.engine import NoInstancesError, prompt_video
        from stvg.prompting.maskdb import write_entry
        from stvg.prompting.video import VideoError, VideoFrames

        p = self.params.prompt
        t0 = time.perf_counter()
        source = VideoFrames(path, p.track_fps, p.max_frames)
        try:
            with self.db.entry(video_id, key) as folder:
                frames = _ReportingFrames(source, progress) if progress else source
                try:
                    result = prompt_video(frames, p, self._detector, backend=self._backend, video_id=video_id)
                except NoInstancesError as exc:
                    raise PromptingError(str(exc)) from exc
                except VideoError as exc:  # decodable header, undecodable frames (a truncated file)
                    raise GroundingInputError(f"video cannot be decoded: {exc}") from exc
                write_entry(folder, result.table, result.summary, result.sampling, result.sampled_frames)
        finally:
            source.close()
        decode = float(result.timings.get("decode_s", 0.0))
        return {"decode_s": decode, "prompt_s": time.perf_counter() - t0 - decode}

    def has(self, video_id: str) -> bool:
        """Whether the database holds the video (prompting may have failed, e.g. nothing detected)."""
        return self.db.has(video_id)

    def entry(self, video_id: str) -> PromptedVideo:
        """A video already in the database (after ``prompt``)."""
        return PromptedVideo(self.db, video_id, {})

    def keep_only(self, video_ids: set[str]) -> None:
        """Drop every other entry (a server's bounded cache)."""
        with self.lock:
            self.db.prune(keep=video_ids)


class _ReportingFrames:
    """A frame source that reports how far tracking has read (the progress bar)."""

    def __init__(self, source: Any, progress: Progress) -> None:
        self.source, self.progress = source, progress
        self.meta, self.frame_indices = source.meta, source.frame_indices
        self._done = 0

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        frames = self.source.read(start, stop)
        if start + len(frames) > self._done:  # later passes re-read earlier frames: report only progress
            self._done = start + len(frames)
            self.progress(self._done, len(self.frame_indices))
        return frames


def read_video(path: Path) -> Iterator[np.ndarray]:
    """Every native frame of a video, RGB uint8, in order (decoded in chunks)."""
    from stvg.prompting.video import VideoFrames

    source = VideoFrames(path)
    try:
        n = len(source.frame_indices)
        for start in range(0, n, 64):
            yield from source.read(start, min(n, start + 64))
    finally:
        source.close()


def write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    """Encode RGB frames as mp4 (atomic); returns the frames written."""
    from stvg.prompting.render import write_video

    return write_video(path, frames, fps, size)
