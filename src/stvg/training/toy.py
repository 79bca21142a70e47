"""A video-dependent toy task on which GRPO must learn through the video path to beat chance.

Every toy video is a few frames of one flat colour (with a little per-video noise); the colour alone
names the target: red -> ID 1, green -> 2, blue -> 3, white -> 4. The question is the same sentence for
every sample, so an ID better than chance (1 / ``len(COLOURS)``) can only come from the frames.

``tests/smoke/test_grpo_learns.py`` and ``benchmarks/bench_grpo_learning.py`` run it: the tiny policy,
taught the answer *format* on toy videos answered with random IDs (nothing of the colour -> ID rule),
then trained with GRPO on the paper's three rewards for ``STEPS`` steps, raises its mean ID reward
from chance to above 0.8 and answers held-out videos greedily by their colour (figures per seed in
``README.md``); with the video withheld from the loss pass
(``train(video_in_loss=False)``, TRL's stock behaviour) the same run stays at chance -- which proves
the gradient reaches the answer through the frames. ``train_pair`` runs both from one warm-up, side
by side in two processes.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stvg.training import template
from stvg.training.warmup import WarmupItem

COLOURS: tuple[tuple[int, int, int], ...] = ((230, 30, 30), (30, 200, 30), (30, 30, 230), (235, 235, 235))
QUERY = "the object whose colour fills the video"
# A short prompt keeps the CPU run fast; the project's template would only add constant text.
QUESTION_TEMPLATE = (
    "Which object ID and time range does this describe: {query}? Answer in <answer> </answer>."
)
FRAMES, SIZE, NATIVE_FPS, STEP = 4, 112, 10.0, 5  # 4 frames of 112x112 px (32 video tokens) at 2 fps
DURATION_S = FRAMES * STEP / NATIVE_FPS
NOISE = 12  # +- grey levels per pixel
STEPS = 300  # GRPO steps of a run: the ID reward passed 0.8 on all 12 seeds measured (200: on 8)


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


@dataclass(frozen=True)
class ToyRun:
    """Mean ID reward per GRPO step of one toy run (sampled answers), the trained policy's greedy ID
    accuracy on held-out toy videos, and how long it took."""

    rewards: list[float]
    seconds: float
    greedy_accuracy: float = float("nan")
    greedy_by_colour: tuple[float, ...] = ()  # the same per colour (``COLOURS`` order)

    def mean(self, start: int, stop: int | None = None) -> float:
        """Mean ID reward over steps ``start:stop`` (Python slice semantics)."""
        return float(np.mean(self.rewards[start:stop]))

    def windows(self, size: int = 10) -> list[float]:
        """Mean ID reward over consecutive ``size``-step windows (a last partial window is left out)."""
        return [self.mean(i, i + size) for i in range(0, len(self.rewards) - size + 1, size)]


def warmed_policy(seed: int = 0, steps: int = 100, threads: int = 1) -> tuple[Any, Any, float]:
    """The tiny policy taught the answer format on toy videos with random IDs; (model, processor, greedy
    parse rate after the warm-up)."""
    import torch

    from stvg.config import TinyModelParams
    from stvg.training.policy import build_tiny_policy
    from stvg.training.warmup import warm_up_format

    torch.set_num_threads(threads)
    model, processor = build_tiny_policy(TinyModelParams(seed=seed))
    warm = warm_up_format(
        model,
        processor,
        steps=steps,
        lr=3e-3,
        batch=8,
        seed=seed,
        make_item=warmup_item,
        question_template=QUESTION_TEMPLATE,
    )
    return model, processor, float(warm["format_parse_rate"])


def train(
    policy_dir: str | Path,
    *,
    steps: int,
    video_in_loss: bool = True,
    learning_rate: float = 1e-3,
    warmup_fraction: float = 0.1,
    num_generations: int = 8,
    prompts_per_step: int = 8,
    beta: float = 0.04,
    temperature: float = 0.7,
    seed: int = 0,
    held_out_per_colour: int = 16,
    threads: int = 1,
) -> ToyRun:
    """GRPO on the toy task from the policy saved in ``policy_dir``; the ID reward curve.

    Why these settings (each fixes a failure seen in runs of the earlier ones; figures on 12 seeds in
    ``README.md``):
    - The paper's three rewards with equal weights. The toy's time range is always the whole clip, but
      rewarding it matters: the ID reward needs a parsable time range, and without the tIoU reward one
      update that drops the range from every answer zeroes every reward, for good.
    - ``learning_rate`` rises linearly over the first ``warmup_fraction`` of the steps, then decays
      linearly to 0. Adam's first steps move every weight by about the learning rate whatever the
      gradient's size: without the rise one early step broke the format of all answers at once.
    - 8 prompts x 8 completions per step. The colour reaches the ID position weakly after the format
      warm-up; with 4 prompts per step the gradient's noise locked some colours onto another colour's
      ID (2 or 3 of 4 colours learnt on half the seeds). Peak rate 1e-3: 2e-3 still spiked there.
    - The KL to the warmed-up policy (``beta``) keeps the IDs from collapsing to one answer before the
      frames are read; sampling at ``temperature`` 0.7 keeps the answers well formed while the IDs,
      near-uniform after the warm-up, still vary within each group.

    In the ablation (``video_in_loss=False``, TRL's stock behaviour) generation sees the frames and
    every log-prob pass (reference and loss) does not. No checkpoints are kept; the trained policy then
    answers ``held_out_per_colour`` unseen videos of each colour greedily (``ToyRun.greedy_accuracy``).
    """
    import tempfile
    import time

    import torch
    from trl import GRPOConfig

    from stvg.training.grpo import build_trainer, video_dataset
    from stvg.training.policy import load_policy, save_policy
    from stvg.training.rewards import build_reward_funcs

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    funcs, weights = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 1.0})
    dataset = video_dataset(rows(steps * prompts_per_step // len(COLOURS) + 1), frames_of, QUESTION_TEMPLATE)
    model, processor = load_policy(str(policy_dir))  # TRL builds the reference model from this folder
    with tempfile.TemporaryDirectory(prefix="stvg-toy-") as tmp:
        args = GRPOConfig(
            output_dir=tmp,
            num_generations=num_generations,
            per_device_train_batch_size=num_generations * prompts_per_step,
            max_steps=steps,
            learning_rate=learning_rate,
            warmup_steps=max(1, round(steps * warmup_fraction)),
            lr_scheduler_type="linear",  # decayed to 0: calm last steps, a stable final policy
            beta=beta,
            loss_type="grpo",
            temperature=temperature,
            max_completion_length=40,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            disable_tqdm=True,
            seed=seed,
            reward_weights=weights,
        )
        trainer = build_trainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=dataset,
            processing_class=processor,
            video_in_loss=video_in_loss,
        )
        trainer.train()
        save_policy(trainer.model, processor, f"{tmp}/trained", QUESTION_TEMPLATE)
        hits = greedy_hits(f"{tmp}/trained", held_out_per_colour)
    key = "rewards/object_reward/mean"
    rewards = [h[key] for h in trainer.state.log_history if key in h]
    by_colour = tuple(float(np.mean(hits[k :: len(COLOURS)])) for k in range(len(COLOURS)))
    return ToyRun(rewards, time.perf_counter() - t0, float(np.mean(hits)), by_colour)


def train_pair(seed: int = 0, steps: int = STEPS, **kwargs: Any) -> tuple[float, ToyRun, ToyRun]:
    """One format warm-up, then GRPO with and without the video in the loss from it, in two processes
    at once (each on one thread: the pair takes one run's time on two cores); (warm-up parse rate, run
    with the video, run without). ``kwargs`` go to ``train``."""
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    from stvg.training.policy import save_policy

    model, processor, parse_rate = warmed_policy(seed=seed)
    with tempfile.TemporaryDirectory(prefix="stvg-toy-warm-") as tmp:
        save_policy(model, processor, tmp)
        del model
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
        parent = os.getpid()
        with ProcessPoolExecutor(
            max_workers=2, mp_context=spawn, initializer=die_with_parent, initargs=(parent,)
        ) as pool:
            runs = [
                pool.submit(train, tmp, steps=steps, video_in_loss=flag, seed=seed, **kwargs)
                for flag in (True, False)
            ]
            with_video, without_video = (r.result() for r in runs)
    return parse_rate, with_video, without_video


def die_with_parent(parent: int) -> None:
    """Worker initialiser: end this process when ``parent`` dies (Linux ``PR_SET_PDEATHSIG``), so a run
    killed mid-pair leaves no training process behind; elsewhere a no-op (the worker then ends on
    its broken pipe after its run)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


HELD_OUT_OFFSET = 1_000_000  # toy video numbers from here on are never trained on


def greedy_hits(policy_dir: str, n_per_colour: int) -> list[bool]:
    """For ``n_per_colour`` held-out toy videos of each colour (interleaved, as ``rows``), whether the
    greedy answer names the colour's ID: what the policy learnt, without the training reward's sampling."""
    from stvg.training.answer import parse_answer
    from stvg.training.inference import Answerer

    held_out = rows(n_per_colour, offset=HELD_OUT_OFFSET)
    items = [{"video": frames_of(r["video_id"])[0], "sampling": sampling(), "query": QUERY} for r in held_out]
    texts = Answerer(policy_dir, "cpu").answer(items, batch_size=16, max_new_tokens=40, progress=False)
    return [parse_answer(t).target_id == r["target_id"] for t, r in zip(texts, held_out, strict=True)]
