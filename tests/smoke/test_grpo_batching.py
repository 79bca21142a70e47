"""GRPO batch semantics measured on the real trainer: the prompts an optimizer step sees and the
completions per generate call are what ``training.batching`` computes from the resolved config (here the
one-GPU paper shape scaled down: n = 2, 1 completion per micro-step, 4 accumulated, 2 per generation)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from stvg.config import TinyModelParams, TrainParams

pytestmark = pytest.mark.slow

SAMPLING = {"native_fps": 10.0, "n_frames": 40, "frame_indices": [0, 10, 20, 30], "width": 56, "height": 56}


def _frames(video_id: str) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(int(video_id[1:]))
    return rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8), dict(SAMPLING)


def test_prompts_per_optimizer_step_match_the_resolved_semantics(tmp_path: Path, monkeypatch) -> None:
    import stvg.training.train as train_mod
    from stvg.training.policy import build_tiny_policy, save_policy

    seen: dict[int, list[list[str]]] = defaultdict(list)  # optimizer step -> sample ids per reward call

    def spy(completions, sample_id, trainer_state, **kwargs):
        seen[trainer_state.global_step].append(list(sample_id))
        return [float(len(str(c)) % 3) for c in completions]

    monkeypatch.setattr(train_mod, "build_reward_funcs", lambda weights, gate, **_: ([spy], [1.0]))
    model, processor = build_tiny_policy(TinyModelParams())
    save_policy(model, processor, tmp_path / "base")
    grpo = {
        "num_generations": 2,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 4,
        "steps_per_generation": 2,
        "loss_type": "grpo",
        "max_completion_length": 4,
        "max_steps": 2,
        "save_strategy": "no",
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "beta": 0.0,
        "bf16": False,
    }
    rows = [
        {"sample_id": f"s{i}", "video_id": f"v{i}", "query": "the red square", "start_s": 0.5, "end_s": 2.0}
        for i in range(8)
    ]
    rows = [{**r, "target_id": 1} for r in rows]
    result = train_mod.train(
        TrainParams(grpo=grpo), rows, tmp_path / "out", base_model=tmp_path / "base", load_frames=_frames
    )

    semantics = result.batching
    assert semantics["prompts_per_step"] == 2 and semantics["completions_per_generate_call"] == 2
    assert semantics["loss_type"] == "grpo" and semantics["loss_normalisation"].startswith("per-sequence")
    assert result.global_step == 2 and sorted(seen) == [0, 1]
    for step, calls in seen.items():
        # one generate call per `steps_per_generation` micro-steps, each one prompt's whole group
        assert len(calls) == 4 // 2, (step, calls)
        assert all(
            len(ids) == semantics["completions_per_generate_call"] and len(set(ids)) == 1 for ids in calls
        )
        assert len({i for ids in calls for i in ids}) == semantics["prompts_per_step"], (step, calls)
    summary_keys = json.loads(json.dumps(semantics))  # JSON-ready for the stage summary
    assert summary_keys["completions_per_step"] == 4
