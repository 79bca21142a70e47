"""The tiny policy's format warm-up: random questions teach the answer format and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from stvg.config import TinyModelParams
from stvg.training.answer import parse_answer
from stvg.training.warmup import random_item, warm_up_format


def test_random_items_are_well_formed_and_carry_no_task_data():
    rng = np.random.default_rng(0)
    items = [random_item(rng) for _ in range(50)]
    for it in items:
        t, h, w, c = it.video.shape
        assert c == 3 and h % 28 == 0 and w % 28 == 0 and t == len(it.sampling["frame_indices"])
        parsed = parse_answer(it.answer)
        duration = it.sampling["n_frames"] / it.sampling["native_fps"]
        assert parsed.ok and 0 <= parsed.start_s <= parsed.end_s <= duration + 0.01
    assert len({it.answer for it in items}) == 50  # random answers: nothing to learn but the format
    again = random_item(np.random.default_rng(0))
    assert again.answer == items[0].answer and np.array_equal(again.video, items[0].video)


def test_labels_cover_only_the_answer():
    import torch

    from stvg.training.warmup import _labels

    header = [7, 8]
    ids = torch.tensor([[0, 0, 5, 7, 8, 9, 10], [5, 7, 8, 1, 7, 8, 11]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    labels = _labels(ids, mask, header)
    assert labels.tolist() == [
        [-100, -100, -100, -100, -100, 9, 10],
        [-100] * 6 + [11],
    ]  # after the last header
    with pytest.raises(ValueError, match="assistant header"):
        _labels(torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.long), header)


@pytest.mark.slow
def test_warm_up_teaches_the_tiny_policy_the_answer_format():
    from stvg.training.policy import build_tiny_policy

    model, processor = build_tiny_policy(TinyModelParams())
    before = warm_up_format(model, processor, steps=0, lr=3e-3, batch=4, seed=1)
    assert before["format_parse_rate"] == 0.0  # a random model never answers in the format
    stats = warm_up_format(model, processor, steps=150, lr=3e-3, batch=4, seed=0)
    assert stats["format_loss_last"] < 0.25 * stats["format_loss_first"]
    assert stats["format_parse_rate"] >= 0.75  # measured 1.0
