"""GRPO learns through the video: on the toy task (``training.toy``: a clip's colour names the target ID,
the question is the same for every clip) the tiny policy's mean ID reward rises from chance to >= 0.8,
and stays at chance when the video is withheld from the loss pass (TRL's stock behaviour), so the
gradient reaches the answer through the frames. One format warm-up (random IDs) is shared by both runs."""

from __future__ import annotations

import pytest

from stvg.training import toy

pytestmark = pytest.mark.slow

STEPS = 150
CHANCE = 1 / len(toy.COLOURS)


@pytest.fixture(scope="module")
def warmed():
    model, processor, parse_rate = toy.warmed_policy(seed=0)
    assert parse_rate == 1.0, "the format warm-up must teach the answer format"
    return model, processor


def test_the_id_reward_rises_from_chance_to_08_through_the_video(warmed) -> None:
    run = toy.train(*warmed, steps=STEPS, video_in_loss=True)
    assert len(run.rewards) == STEPS
    assert run.mean(0, 10) < CHANCE + 0.2, f"not starting from chance: {run.rewards[:10]}"
    assert run.mean(-10) >= 0.8, f"did not learn the colour -> ID rule: {run.rewards[-30:]}"


def test_without_the_video_in_the_loss_it_stays_at_chance(warmed) -> None:
    run = toy.train(*warmed, steps=STEPS, video_in_loss=False)
    assert run.mean(-30) < CHANCE + 0.2, f"learnt without the video in the loss: {run.rewards[-30:]}"
