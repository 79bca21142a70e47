"""Which frames the policy sees, at what size: Qwen2.5-VL's video sampling, computed once and recorded.

The arithmetic is that of ``qwen_vl_utils.vision_process`` (the preprocessing the official STVG-R1
code and Time-R1 run before Qwen2.5-VL): ``smart_nframes`` picks an even number of frames at the
requested rate (default 2 fps, at least 4, at most 768), ``torch.linspace(0, n-1, k).round()``
spreads them over the video, and ``smart_resize`` sizes every frame to multiples of 28 within a
per-frame pixel cap of ``min(max_frame_pixels, total_pixels / k * 2)`` (two frames share one
temporal patch, so ``k/2 * h * w <= total_pixels``). Doing it here, once, and storing the plan with
the prompted video (``sampling.json``) means evaluation and training map seconds <-> sampled frames
identically, and the processor receives frames already at their final size.

The effective rate ``SamplingPlan.fps`` is ``k / n_frames * native_fps``, which is what qwen-vl-utils
returns as ``video_kwargs["fps"]`` and what transformers' ``VideoMetadata.sampled_fps`` computes from
``(total_num_frames, fps, frames_indices)``; it can differ slightly from the requested 2 fps.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stvg.config import SamplingParams

IMAGE_FACTOR = 28  # frame sides are multiples of this (14-px patches merged 2x2)
FRAME_FACTOR = 2  # frame counts are multiples of this (temporal patch size)
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
MAX_RATIO = 200  # longest/shortest side limit of the processor


@dataclass(frozen=True)
class SamplingPlan:
    """The exact frames (native indices, seconds) and size the policy sees for one video."""

    frame_indices: tuple[int, ...]  # 0-based native frame indices, increasing
    times_s: tuple[float, ...]  # seconds, frame_index / native_fps
    fps: float  # effective sampled rate (k / n_frames * native_fps), what the processor is told
    native_fps: float
    out_height: int  # resized frame size, multiples of IMAGE_FACTOR
    out_width: int
    n_frames: int = 0  # native frame count of the video
    requested_fps: float = 2.0

    @property
    def n_samples(self) -> int:
        """Number of sampled frames."""
        return len(self.frame_indices)

    @property
    def visual_tokens(self) -> int:
        """Vision tokens after the 2x2 spatial merge and 2-frame temporal patch."""
        return (
            (self.n_samples // FRAME_FACTOR)
            * (self.out_height // IMAGE_FACTOR)
            * (self.out_width // IMAGE_FACTOR)
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the content of ``sampling.json``)."""
        d = asdict(self)
        d["frame_indices"] = list(self.frame_indices)
        d["times_s"] = list(self.times_s)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingPlan:
        """Inverse of ``to_dict``; raises ValueError on a malformed record."""
        try:
            plan = cls(
                frame_indices=tuple(int(i) for i in d["frame_indices"]),
                times_s=tuple(float(t) for t in d["times_s"]),
                fps=float(d["fps"]),
                native_fps=float(d["native_fps"]),
                out_height=int(d["out_height"]),
                out_width=int(d["out_width"]),
                n_frames=int(d.get("n_frames", 0)),
                requested_fps=float(d.get("requested_fps", 2.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"sampling plan record is malformed ({exc!r}); re-run the prompt stage") from exc
        if len(plan.frame_indices) != len(plan.times_s):
            raise ValueError("sampling plan record has different frame_indices and times_s lengths")
        return plan


def round_by_factor(number: float, factor: int) -> int:
    """Closest multiple of ``factor`` (Python's round: halves to even, as qwen-vl-utils)."""
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    """Smallest multiple of ``factor`` >= number."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    """Largest multiple of ``factor`` <= number."""
    return math.floor(number / factor) * factor


def smart_nframes(
    total_frames: int,
    video_fps: float,
    fps: float = 2.0,
    min_frames: int = FPS_MIN_FRAMES,
    max_frames: int = FPS_MAX_FRAMES,
) -> int:
    """Number of frames sampled at ``fps``: even, in [min_frames, max_frames], never above total_frames."""
    lo = ceil_by_factor(min_frames, FRAME_FACTOR)
    hi = floor_by_factor(min(max_frames, total_frames), FRAME_FACTOR)
    nframes = total_frames / video_fps * fps
    nframes = min(min(max(nframes, lo), hi), total_frames)
    nframes = floor_by_factor(nframes, FRAME_FACTOR)
    if not FRAME_FACTOR <= nframes <= total_frames:
        raise ValueError(
            f"a video of {total_frames} frames cannot give {FRAME_FACTOR}..{total_frames} sampled frames "
            f"(got {nframes}); the video needs at least {FRAME_FACTOR} frames"
        )
    return nframes


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: float = 4 * 28 * 28,
    max_pixels: float = 16384 * 28 * 28,
) -> tuple[int, int]:
    """Frame size with both sides multiples of ``factor``, pixels within [min, max], aspect kept."""
    if min(height, width) <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"aspect ratio must be below {MAX_RATIO}, got {height}x{width}")
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def frame_pixel_cap(nframes: int, p: SamplingParams) -> float:
    """Per-frame pixel cap: the total budget shared by the sampled frames (qwen-vl-utils' rule).

    Kept a float, as qwen-vl-utils keeps it: truncating it shrinks some frames by a whole 28-px step
    (640x360, 36 frames: 196x392 instead of 224x392).
    """
    return max(min(p.max_frame_pixels, p.total_pixels / nframes * FRAME_FACTOR), int(p.min_pixels * 1.05))


def linspace_indices(total_frames: int, nframes: int) -> list[int]:
    """``torch.linspace(0, total-1, nframes).round()`` computed in float32 as torch does."""
    if nframes == 1:
        return [0]
    start, end = np.float32(0.0), np.float32(total_frames - 1)
    step = np.float32((end - start) / np.float32(nframes - 1))
    idx = np.arange(nframes)
    half = nframes // 2
    vals = np.where(
        idx < half,
        start + step * idx.astype(np.float32),
        end - step * (nframes - idx - 1).astype(np.float32),
    ).astype(np.float32)
    return [int(v) for v in np.round(vals)]


def plan_sampling(
    n_frames: int, native_fps: float, width: int, height: int, p: SamplingParams
) -> SamplingPlan:
    """The frames and frame size the policy sees for a video of ``n_frames`` at ``native_fps``."""
    if native_fps <= 0:
        raise ValueError(f"native fps must be > 0, got {native_fps}; the video header is broken")
    nframes = smart_nframes(n_frames, native_fps, p.fps)
    indices = linspace_indices(n_frames, nframes)
    out_h, out_w = smart_resize(height, width, IMAGE_FACTOR, p.min_pixels, frame_pixel_cap(nframes, p))
    return SamplingPlan(
        frame_indices=tuple(indices),
        times_s=tuple(i / native_fps for i in indices),
        fps=nframes / n_frames * native_fps,
        native_fps=float(native_fps),
        out_height=out_h,
        out_width=out_w,
        n_frames=int(n_frames),
        requested_fps=float(p.fps),
    )


def second_to_sample_index(plan: SamplingPlan, t: float) -> int:
    """Position in the sampled sequence of the frame nearest to second ``t`` (clamped to the ends)."""
    times = plan.times_s
    if not times:
        raise ValueError("the sampling plan has no frames")
    pos = bisect.bisect_left(times, t)
    if pos <= 0:
        return 0
    if pos >= len(times):
        return len(times) - 1
    return pos if times[pos] - t < t - times[pos - 1] else pos - 1


def sample_index_to_second(plan: SamplingPlan, i: int) -> float:
    """Time in seconds of the ``i``-th sampled frame."""
    if not 0 <= i < len(plan.times_s):
        raise IndexError(f"sample index {i} outside 0..{len(plan.times_s) - 1}")
    return plan.times_s[i]


def sample_index_to_frame(plan: SamplingPlan, i: int) -> int:
    """Native frame index of the ``i``-th sampled frame."""
    if not 0 <= i < len(plan.frame_indices):
        raise IndexError(f"sample index {i} outside 0..{len(plan.frame_indices) - 1}")
    return plan.frame_indices[i]
