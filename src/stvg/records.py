"""Records that cross module boundaries: one grounding sample, one detection, one track observation.

Conventions used everywhere in the project:
- frames are 0-based native-video frame indices; a frame span ``(first, last)`` is inclusive;
- boxes are ``(x1, y1, x2, y2)`` in absolute pixels, no +1 (x2 = x + w);
- times are seconds from the start of the video.
Each dataset adapter converts its own convention (HC-STVG's 1-based ``st_frame``, VidSTG's exclusive
``end_fid`` ...) into these at the boundary, so nothing downstream has to know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Box = tuple[float, float, float, float]  # xyxy, pixels
Rle = dict[str, Any]  # COCO RLE {"size": [h, w], "counts": str}

DATASETS = ("hcstvg-v1", "hcstvg-v2", "vidstg", "mevis", "charades-sta", "st-align", "synthetic")
SENTENCE_TYPES = ("declarative", "interrogative")


@dataclass(frozen=True)
class Sample:
    """One referring expression grounded in one video (the unit of labels, training and evaluation)."""

    sample_id: str
    dataset: str
    video: str  # path of the video file (relative to the data root, or absolute)
    query: str
    fps: float
    n_frames: int
    width: int  # 0 when the release does not state it (Charades-STA)
    height: int
    sentence_type: str = "declarative"
    video_id: str = ""  # dataset's own video key; defaults to the file stem
    gt_span_s: tuple[float, float] | None = None  # seconds, GT event start/end
    gt_span_frames: tuple[int, int] | None = None  # 0-based, inclusive
    # frame -> xyxy; a read-only Mapping (HC-STVG adapters pass a compact array-backed view, stvg.data.tubes)
    gt_boxes: Mapping[int, Box] = field(default_factory=dict)
    gt_masks: dict[int, Rle] | None = None  # frame -> COCO RLE (union over target objects)
    target_ids: tuple[int, ...] = ()  # dataset instance ids of the target(s) (VidOR tid, MeViS obj_id)
    split: str = ""
    clip_frames: tuple[int, int] | None = None  # inclusive frames used (VidSTG used_segment, ST-Align split)
    stated_duration_s: float = 0.0  # duration the release states when fps/n_frames are unknown (Charades-STA)

    @property
    def duration_s(self) -> float:
        """Video duration in seconds: the release's stated duration if any, else n_frames / fps."""
        if self.stated_duration_s > 0:
            return self.stated_duration_s
        return self.n_frames / self.fps if self.fps > 0 else 0.0

    @property
    def target_id(self) -> int | None:
        """The single target instance id, when the sample has exactly one."""
        return self.target_ids[0] if len(self.target_ids) == 1 else None


@dataclass(frozen=True)
class Detection:
    """One detector output on one frame."""

    frame: int
    box: Box
    score: float
    class_id: int = 0
    class_name: str = ""


@dataclass(frozen=True)
class TrackObservation:
    """One instance on one frame in the mask/box database (one row of the per-video table)."""

    frame: int
    time_s: float
    instance_id: int
    box: Box
    area: int
    score: float
    rle: Rle | None = None
