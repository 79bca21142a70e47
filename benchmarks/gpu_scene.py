"""A procedural scene with known objects, and detectors that prompt exactly those objects.

Shared by ``benchmarks/gpu_prompt.py`` and ``tests/gpu``. Random-weight YOLO finds nothing useful and
random-weight SAM2 masks match no detection, so with real-but-random models every keyframe would add new
IDs (churn) and prompting would be timed on a growing instance count. Here the objects are fixed: three
coloured squares moving on a grey background, rendered by position (no decoding, no memory growth with
length), and ``FixedPrompts`` seeds the engine with their true boxes on the first keyframe and returns
nothing on later ones (random SAM2 masks would not match a box again, so a re-detected object would
become a new ID), optionally after running a real YOLO forward pass on every keyframe for its cost
(``yolo=``). Prompting and bare SAM2 propagation thus track the same three objects throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = ((230, 40, 40), (40, 230, 40), (40, 40, 230))


class Scene:
    """``FrameSource`` of ``n`` frames (h x w) with three squares moving right; frames made on demand."""

    def __init__(self, n: int, h: int, w: int, fps: float = 30.0) -> None:
        from stvg.prompting.video import VideoMeta

        self.meta = VideoMeta(fps=fps, n_frames=n, width=w, height=h)
        self.frame_indices = list(range(n))
        self.h, self.w = h, w

    def boxes(self, t: int) -> list[tuple[float, float, float, float]]:
        """The three objects' boxes on frame ``t`` (x1, y1, x2, y2)."""
        s = min(self.h, self.w) // 6
        out = []
        for k in range(len(COLOURS)):
            x = (k * self.w // 3 + 2 * t) % (self.w - s)
            y = (k + 1) * self.h // 5
            out.append((float(x), float(y), float(x + s), float(y + s)))
        return out

    def frame(self, t: int) -> np.ndarray:
        """RGB uint8 frame ``t``."""
        f = np.full((self.h, self.w, 3), 40, np.uint8)
        for colour, (x1, y1, x2, y2) in zip(COLOURS, self.boxes(t), strict=True):
            f[int(y1) : int(y2), int(x1) : int(x2)] = colour
        return f

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        """Frames ``start`` .. ``stop - 1`` (clipped to the video)."""
        return [self.frame(t) for t in range(max(0, start), min(stop, self.meta.n_frames))]

    def write_mp4(self, path: Path) -> Path:
        """The scene as an mp4 file (for the prompt stage, which reads videos from disk)."""
        from stvg.data.synthetic import write_mp4

        write_mp4(path, np.stack(self.read(0, self.meta.n_frames)), self.meta.fps)
        return path


class FixedPrompts:
    """An engine ``Detector`` returning the scene's true boxes (no masks) on ``seed_frames`` and nothing
    elsewhere, optionally after running a real YOLO forward pass so its cost is in the timing."""

    def __init__(
        self,
        scene: Scene,
        yolo: Any = None,
        device: str = "cpu",
        imgsz: int = 640,
        seed_frames: tuple[int, ...] = (0,),
    ) -> None:
        self.scene, self.yolo, self.device, self.imgsz = scene, yolo, device, imgsz
        self.seed_frames = set(seed_frames)

    def detect_with_masks(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int] | None = None
    ) -> list[list[tuple[Any, np.ndarray | None]]]:
        from stvg.records import Detection

        if self.yolo is not None:
            bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
            self.yolo.predict(bgr, imgsz=self.imgsz, device=self.device, verbose=False)
        idx = list(frame_indices) if frame_indices is not None else list(range(len(frames)))
        return [
            [(Detection(int(t), box, 0.9, 0, "square"), None) for box in self.scene.boxes(int(t))]
            if int(t) in self.seed_frames
            else []
            for t in idx
        ]


class BoxMasks:
    """A SAM2 ``Segmenter`` that runs the real image predictor (so its cost is timed) but returns each
    box filled as the object's mask: random-weight masks are arbitrary blobs that the duplicate rule
    would merge, and the benchmark must track the same three objects as bare SAM2."""

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter

    def masks(self, frame: np.ndarray, boxes: Sequence[Any]) -> list[np.ndarray]:
        from stvg.prompting.identity.observation import box_mask

        self.segmenter.masks(frame, boxes)
        h, w = frame.shape[:2]
        return [box_mask(b, h, w) for b in boxes]


def build_yolo(arch: str) -> Any:
    """A random-weight Ultralytics YOLO from an architecture yaml (offline; e.g. ``yolo12x.yaml``)."""
    from stvg.prompting.detector import load_yolo

    return load_yolo(arch)
