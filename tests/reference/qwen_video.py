"""``qwen_vl_utils.vision_process`` video sampling (the copy in Time-R1), restated: how many frames
at which indices, and the per-frame size, for ``fps`` 2, ``total_pixels`` and ``min_pixels``."""

from __future__ import annotations

import math

IMAGE_FACTOR, FRAME_FACTOR = 28, 2
FPS_MIN_FRAMES, FPS_MAX_FRAMES = 4, 768
VIDEO_MAX_PIXELS = 768 * 28 * 28


def n_frames(total_frames: int, video_fps: float, fps: float = 2.0) -> int:
    """``smart_nframes`` with ``fps`` given: an even count in [4, min(768, total)], never above total."""
    low = math.ceil(FPS_MIN_FRAMES / FRAME_FACTOR) * FRAME_FACTOR
    high = math.floor(min(FPS_MAX_FRAMES, total_frames) / FRAME_FACTOR) * FRAME_FACTOR
    wanted = total_frames / video_fps * fps
    wanted = min(min(max(wanted, low), high), total_frames)
    return math.floor(wanted / FRAME_FACTOR) * FRAME_FACTOR


def frame_size(height: int, width: int, nframes: int, total_pixels: int, min_pixels: int) -> tuple[int, int]:
    """``fetch_video``'s cap max(min(768*28*28, total / n * 2), int(min * 1.05)) -- a float --
    then ``smart_resize`` to multiples of 28."""
    max_pixels = max(min(VIDEO_MAX_PIXELS, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    h = max(IMAGE_FACTOR, round(height / IMAGE_FACTOR) * IMAGE_FACTOR)
    w = max(IMAGE_FACTOR, round(width / IMAGE_FACTOR) * IMAGE_FACTOR)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = max(IMAGE_FACTOR, math.floor(height / beta / IMAGE_FACTOR) * IMAGE_FACTOR)
        w = max(IMAGE_FACTOR, math.floor(width / beta / IMAGE_FACTOR) * IMAGE_FACTOR)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / IMAGE_FACTOR) * IMAGE_FACTOR
        w = math.ceil(width * beta / IMAGE_FACTOR) * IMAGE_FACTOR
    return h, w
