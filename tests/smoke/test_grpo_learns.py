"""GRPO learns through the video: on the toy task (``training.toy``: a clip's colour names the target ID,
the question is the same for every clip, chance 0.25) the tiny policy's mean ID reward rises from chance
within 200 steps and its greedy answers name the ID of at least three of the four colours on held-out
videos, while with the video withheld from every log-prob pass (TRL's stock behaviour) it stays at
chance, so the gradient reaches the answer through the frames. One format warm-up (random IDs) serves both runs, which train
side by side (``toy.train_pair``).

The test runs 200 steps, not the toy's ``STEPS`` (300), to keep CI's time: the pair takes ~5 min here
instead of ~7. Measured on 12 seeds at 200 steps (``docs/GRPO.md``, "GRPO learns through the video";
8 prompts x 8 completions, peak lr 1e-3): greedy accuracy 1.0 or 0.75 (all four colours or three) on
every seed, best 10-step mean 0.69-0.98, last 30 steps 0.63-0.97; the 0.8 that 300 steps pass on
every seed is reached on 8. A CPU of another kind takes another sampling path from the same seed, so
the bars hold on every seed measured rather than on seed 0's figures: best 10-step mean >= 0.65, last
30 steps >= 0.55, greedy >= 0.7 (three of four colours); without the video every 10-step mean stays
below chance + 0.15 and greedy at most 0.5.
"""

from __future__ import annotations

import pytest

from stvg.training import toy

pytestmark = pytest.mark.slow

STEPS = 200  # CI's time; toy.STEPS (300) is what the benchmark runs
CHANCE = 1 / len(toy.COLOURS)
BEST_WINDOW, LAST_30, GREEDY = 0.65, 0.55, 0.7


@pytest.fixture(scope="module")
def pair() -> tuple[toy.ToyRun, toy.ToyRun]:
    parse_rate, with_video, without_video = toy.train_pair(seed=0, steps=STEPS)
    assert parse_rate == 1.0, "the format warm-up must teach the answer format"
    return with_video, without_video


def test_the_id_reward_rises_from_chance_through_the_video(pair) -> None:
    run = pair[0]
    assert len(run.rewards) == STEPS
    assert run.mean(0, 10) < CHANCE + 0.15, f"not starting from chance: {run.rewards[:10]}"
    assert max(run.windows()) >= BEST_WINDOW, f"did not learn the colour -> ID rule: {run.windows()}"
    assert run.mean(-30) >= LAST_30, f"did not keep it: {run.windows()}"
    # greedy answers on 64 unseen videos (an answer that does not depend on the colour names one
    # colour right: 0.25)
    assert run.greedy_accuracy >= GREEDY, f"held-out greedy accuracy by colour: {run.greedy_by_colour}"


def test_without_the_video_in_the_loss_it_stays_at_chance(pair) -> None:
    run = pair[1]
    assert len(run.rewards) == STEPS
    assert max(run.windows()) < CHANCE + 0.15, f"rose without the video in the loss: {run.windows()}"
    assert run.mean(-30) < CHANCE + 0.1
    assert run.greedy_accuracy <= 0.5, f"held-out greedy accuracy by colour: {run.greedy_by_colour}"
