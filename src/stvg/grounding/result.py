"""The answer to one grounding request, as the CLI writes it (result.json) and the server returns it.

``ok`` means the policy gave a parsable answer naming an instance of this video; otherwise ``error``
says why (an unparsable answer, an ID the video does not have, nothing detected in the video) and the
raw ``answer`` is kept so the failure can be read. The ``tube`` holds the answered instance's boxes
(xyxy, pixels) on its tracked frames inside the answered span, keyed by native frame index.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class GroundingResult:
    """One grounded query."""

    video: str  # as the caller named it (a path, or "<N bytes>" for uploads)
    video_id: str  # content hash prefix: the video's entry in the mask database
    query: str
    answer: str  # the policy's raw text
    ok: bool
    error: str = ""
    target_id: int | None = None
    start_s: float | None = None  # seconds
    end_s: float | None = None
    tube: dict[int, Box] = field(default_factory=dict)  # native frame -> xyxy over the answered span
    instances: tuple[int, ...] = ()  # the video's instance IDs
    fps: float = 0.0
    n_frames: int = 0
    width: int = 0
    height: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    model: dict[str, str] = field(default_factory=dict)  # which model answered

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tube keys as strings, boxes as lists, NaN as None)."""
        out = asdict(self)
        out["tube"] = {str(f): [round(float(v), 2) for v in box] for f, box in sorted(self.tube.items())}
        out["instances"] = list(self.instances)
        for key in ("start_s", "end_s"):
            value = out[key]
            out[key] = None if value is None or not math.isfinite(value) else float(value)
        out["timings"] = {k: round(float(v), 4) for k, v in self.timings.items()}
        return out

    def summary_line(self, where: str) -> str:
        """One human line: ``ID 2, 5.00–11.00 s, 120 frames, result in DIR``."""
        if not self.ok:
            return f"no grounding: {self.error}; result in {where}"
        return (
            f"ID {self.target_id}, {self.start_s:.2f}–{self.end_s:.2f} s, {len(self.tube)} frames, "
            f"result in {where}"
        )
