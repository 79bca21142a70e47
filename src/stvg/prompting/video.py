"""Video decoding with OpenCV, streamed: the tracked frames of a video without holding them all.

``VideoFrames`` maps tracked-frame positions (0..T-1) to native frame indices (``track_fps`` lowers
the rate, ``max_frames`` caps the count) and serves them as RGB arrays in position ranges, decoding
sequentially and seeking only when asked for an earlier range (backward propagation).
``ArrayFrames`` is the same interface over frames already in memory (tests, benchmarks).
``content_hash`` identifies a video by its bytes, for the content-addressed mask database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import numpy as np

PLAUSIBLE_FPS = (1 / 60, 1000.0)  # frame rates of real footage: a frame a minute .. high-speed cameras


class VideoError(RuntimeError):
    """A video cannot be opened or has no decodable frames; the message names the file and the fix."""


@dataclass(frozen=True)
class VideoMeta:
    """Native properties of a video file."""

    fps: float
    n_frames: int
    width: int
    height: int


class FrameSource(Protocol):
    """Tracked frames by position: what the engine and the trackers read."""

    meta: VideoMeta
    frame_indices: list[int]  # position -> native frame index

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        """RGB uint8 (H, W, 3) frames at positions ``start..stop-1``."""
        ...


def tracked_indices(
    n_frames: int, native_fps: float, track_fps: float = 0.0, max_frames: int = 0
) -> list[int]:
    """Native frame indices tracked at ``track_fps`` (0 = every frame), capped at ``max_frames`` (0 = all)."""
    if track_fps <= 0 or track_fps >= native_fps:
        idx = list(range(n_frames))
    else:
        step = native_fps / track_fps
        idx = sorted({min(n_frames - 1, round(k * step)) for k in range(int(np.ceil(n_frames / step)))})
    return idx[:max_frames] if max_frames > 0 else idx


def probe(path: str | Path) -> VideoMeta:
    """Native fps, frame count and size; frame count is verified by decoding when the header lies."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(
                f"{path}: OpenCV cannot open this video; check the file exists and is a valid video"
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if n <= 0:  # some containers do not state the count: count by grabbing
            n = 0
            while cap.grab():
                n += 1
    finally:
        cap.release()
    if n <= 0 or w <= 0 or h <= 0:
        raise VideoError(
            f"{path}: zero decodable frames; re-encode the video (e.g. ffmpeg -i IN -c:v libx264 OUT)"
        )
    if fps <= 0:
        raise VideoError(f"{path}: the video states no frame rate; re-encode it with an explicit -r")
    return VideoMeta(fps=fps, n_frames=n, width=w, height=h)


def undecodable_frame(path: str | Path, native: int, meta: VideoMeta) -> str:
    """Why frame ``native`` cannot be read: broken timestamps when the stated rate is no video's, else truncation.

    OpenCV steps through a file by timestamps; a header claiming, say, 6e-05 fps (one frame every
    4.5 hours) or 16384 fps makes it stop after the first frame although every frame is there.
    """
    where = f"{path}: frame {native} of the {meta.n_frames} the header states cannot be decoded"
    if not PLAUSIBLE_FPS[0] <= meta.fps <= PLAUSIBLE_FPS[1]:
        return (
            f"{where}; the header's frame rate, {meta.fps:g} fps, is no real video's (outside "
            f"{PLAUSIBLE_FPS[0]:g}..{PLAUSIBLE_FPS[1]:g}), so its timestamps are broken: re-encode the "
            "video with its true rate (e.g. ffmpeg -i IN -r 25 OUT)"
        )
    return f"{where} (truncated file?); re-encode the video or lower prompt.max_frames"


class VideoFrames:
    """Streamed, position-addressed RGB frames of one video file."""

    def __init__(self, path: str | Path, track_fps: float = 0.0, max_frames: int = 0) -> None:
        self.path = Path(path)
        self.meta = probe(self.path)
        self.frame_indices = tracked_indices(self.meta.n_frames, self.meta.fps, track_fps, max_frames)
        self._cap = None
        self._next_native = 0  # native index the open capture will return next

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        """Frames at positions ``start..stop-1``; sequential reads never seek."""
        import cv2

        wanted = self.frame_indices[max(0, start) : max(0, stop)]
        if not wanted:
            return []
        if self._cap is None or wanted[0] < self._next_native:
            self._open(wanted[0])
        out: list[np.ndarray] = []
        assert self._cap is not None
        for native in wanted:
            while self._next_native < native:
                if not self._cap.grab():
                    break
                self._next_native += 1
            ok, bgr = self._cap.read()
            if not ok:
                raise VideoError(undecodable_frame(self.path, native, self.meta))
            self._next_native += 1
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return out

    def _open(self, native: int) -> None:
        import cv2

        self.close()
        self._cap = cv2.VideoCapture(str(self.path))
        self._next_native = 0
        if native > 0 and self._cap.set(cv2.CAP_PROP_POS_FRAMES, native):
            pos = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
            if pos == native:
                self._next_native = native
            else:  # inexact seek: restart and skip by grabbing
                self._cap.release()
                self._cap = cv2.VideoCapture(str(self.path))

    def close(self) -> None:
        """Release the decoder."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArrayFrames:
    """In-memory frames behind the ``FrameSource`` interface (every frame tracked)."""

    def __init__(self, frames: list[np.ndarray] | np.ndarray, fps: float = 10.0) -> None:
        self.frames = list(frames)
        if not self.frames:
            raise VideoError("ArrayFrames: no frames given")
        h, w = self.frames[0].shape[:2]
        self.meta = VideoMeta(fps=fps, n_frames=len(self.frames), width=w, height=h)
        self.frame_indices = list(range(len(self.frames)))

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        """Copies of the frames at positions ``start..stop-1`` (readers may draw on what they get)."""
        return [f.copy() for f in self.frames[max(0, start) : max(0, stop)]]

    def close(self) -> None:
        """Nothing to release."""


class FrameCache:
    """Random access to a source's tracked frames, chunk by chunk, holding a few chunks at a time."""

    def __init__(self, source: FrameSource, chunk: int = 32, keep: int = 4) -> None:
        self.source, self.chunk, self.keep = source, chunk, keep
        self._chunks: dict[int, list[np.ndarray]] = {}

    def get(self, position: int) -> np.ndarray:
        """The RGB frame at tracked position ``position``."""
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


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file bytes (hex): a renamed copy of a video keeps its database entry."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
