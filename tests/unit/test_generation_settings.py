"""Decoding settings for grounding and serving: greedy is greedy, and a sampled answer really samples even
from a checkpoint whose own sampling settings (an instruct model's top-k 1, top-p 0.001) would make
every sample the greedy answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from stvg.config import TinyModelParams
from stvg.training import toy
from stvg.training.inference import Answerer, generation_settings

INSTRUCT_SAMPLING = {
    "do_sample": True,
    "top_k": 1,
    "top_p": 0.001,
    "temperature": 0.1,
    "repetition_penalty": 1.05,
}


@pytest.fixture(scope="module")
def instruct_like_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random policy saved with Qwen2.5-VL-7B-Instruct's sampling settings in its generation config."""
    from stvg.training.policy import build_tiny_policy, save_policy

    model, processor = build_tiny_policy(TinyModelParams(seed=3))
    for key, value in INSTRUCT_SAMPLING.items():
        setattr(model.generation_config, key, value)
    out = tmp_path_factory.mktemp("instruct_like")
    save_policy(model, processor, out)
    return out


def test_sampling_draws_from_the_whole_distribution_as_the_rollouts_do() -> None:
    from transformers import GenerationConfig

    cfg = generation_settings(GenerationConfig(**INSTRUCT_SAMPLING), 32, do_sample=True, temperature=1.0)
    assert (cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty) == (
        True,
        1.0,
        0,
        1.0,
        1.0,
    )
    greedy = generation_settings(GenerationConfig(**INSTRUCT_SAMPLING), 32, do_sample=False)
    assert greedy.do_sample is False and greedy.repetition_penalty == 1.05  # the official evaluation's


def test_sampled_answers_differ_where_the_checkpoint_would_make_them_greedy(
    instruct_like_policy: Path,
) -> None:
    video, sampling = toy.frames_of("toy-0-0")
    items = [{"video": video, "sampling": sampling, "query": toy.QUERY}] * 6
    answerer = Answerer(instruct_like_policy, "cpu")
    sampled = answerer.answer(
        items, batch_size=6, max_new_tokens=12, do_sample=True, temperature=1.0, progress=False
    )
    greedy = answerer.answer(items, batch_size=6, max_new_tokens=12, do_sample=False, progress=False)
    assert len(set(greedy)) == 1  # the same prompt six times
    assert len(set(sampled)) > 1, sampled  # top-k 1 from the checkpoint would give six equal answers
