"""A video-dependent toy task on which GRPO must learn through the video path to beat chance.

Every toy video is a few frames of one flat colour (with a little per-video noise); the colour alone
names the target: red -> ID 1, green -> 2, blue -> 3, yellow -> 4. The question is the same sentence for
every sample, so an ID better than chance (1 / ``len(COLOURS)``) can only come from the frames.

``tests/smoke/test_grpo_learns.py`` and ``benchmarks/bench_grpo_learning.py`` run it: the tiny policy,
taught the answer *format* on toy videos answered with random IDs (nothing of the colour -> ID rule),
then trained with GRPO on the ID reward alone, must raise its mean ID reward from chance to >= 0.8;
with the video withheld from the loss pass (``build_trainer(video_in_loss=False)``, TRL's stock
behaviour) the same run must stay at chance -- which proves the gradient reaches the answer through
the frames.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from stvg.training import template
from stvg.training.warmup import WarmupItem

COLOURS: tuple[tuple[int, int, int], ...] = ((220, 40, 40), (40, 200, 40), (40, 80, 230), (230, 210, 40))
QUERY = "the object whose colour fills the video"
# A short prompt keeps the CPU run fast; the project's template would only add constant text.
QUESTION_TEMPLATE = (
    "Which object ID and time range does this describe: {query}? Answer in <answer> </answer>."
)
FRAMES, SIZE, NATIVE_FPS, STEP = 4, 56, 10.0, 5  # 4 frames of 56x56 px sampled at 2 fps from 10 fps
DURATION_S = FRAMES * STEP / NATIVE_FPS
NOISE = 12  # +- grey levels per pixel


def sampling() -> dict[str, Any]:
    """The sampling record of every toy video (``MaskDB.sampling`` format)."""
    return {
        "frame_indices": [i * STEP for i in range(FRAMES)],
        "n_frames": FRAMES * STEP,
        "native_fps": NATIVE_FPS,
        "width": SIZE,
        "height": SIZE,
    }


def target_of(video_id: str) -> int:
    """The target ID a toy video's colour names (video ids are ``toy-<colour index>-<n>``)."""
    return int(video_id.split("-")[1]) + 1


def frames_of(video_id: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(T, H, W, 3) uint8 frames of a toy video and their sampling; deterministic per video id."""
    colour = np.array(COLOURS[target_of(video_id) - 1], dtype=np.int16)
    rng = np.random.default_rng(zlib.crc32(video_id.encode("utf-8")))
    noise = rng.integers(-NOISE, NOISE + 1, size=(FRAMES, SIZE, SIZE, 3), dtype=np.int16)
    return np.clip(colour + noise, 0, 255).astype(np.uint8), sampling()


def rows(n_per_colour: int, offset: int = 0) -> list[dict[str, Any]]:
    """Label rows (the train stage's format) for ``n_per_colour`` videos of each colour, interleaved."""
    out = []
    for n in range(offset, offset + n_per_colour):
        for k in range(len(COLOURS)):
            vid = f"toy-{k}-{n}"
            out.append(
                {
                    "sample_id": vid,
                    "video_id": vid,
                    "query": QUERY,
                    "start_s": 0.0,
                    "end_s": DURATION_S,
                    "target_id": k + 1,
                }
            )
    return out


def warmup_item(rng: np.random.Generator) -> WarmupItem:
    """A format lesson on a toy video answered with a *random* ID (nothing of the colour rule) and the
    whole clip as the time range, so the ID is the only open token of a sampled answer."""
    video, samp = frames_of(f"toy-{int(rng.integers(len(COLOURS)))}-{int(rng.integers(1_000_000))}")
    answer = template.format_answer(int(rng.integers(1, len(COLOURS) + 1)), 0.0, DURATION_S)
    return WarmupItem(video, samp, QUERY, answer)
