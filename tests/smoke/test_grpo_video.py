"""The video override of TRL's GRPOTrainer, tested directly on the tiny Qwen2.5-VL (random weights, CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stvg.config import TinyModelParams
from stvg.training.grpo import build_trainer, video_dataset
from stvg.training.policy import build_tiny_policy, disable_kv_cache, load_policy, save_policy
from stvg.training.rewards import completion_text

pytestmark = pytest.mark.slow

SAMPLING = {
    "native_fps": 10.0,
    "n_frames": 40,
    "frame_indices": [0, 5, 10, 15, 20, 25],
    "width": 56,
    "height": 56,
}


def _load_frames(video_id: str) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(int(video_id[1:]))
    return rng.integers(0, 255, (6, 56, 56, 3), dtype=np.uint8), dict(SAMPLING)


def _varied_reward(completions, **kwargs) -> list[float]:
    # Random-weight completions almost never parse, so the task rewards are all 0 and GRPO has no
    # signal; a reward that varies within a group makes the update (and the vision gradient) non-zero.
    return [float(len(completion_text(c)) % 5) for c in completions]


ROWS = [
    {
        "sample_id": f"s{i}",
        "video_id": f"v{i}",
        "query": "The red square moves.",
        "start_s": 1.0,
        "end_s": 2.0,
        "target_id": 1,
    }
    for i in range(4)
]
VIDEO_KEYS = {"pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids"}


def _args(tmp_path, **overrides):
    from trl import GRPOConfig

    kwargs = {
        "num_generations": 2,
        "per_device_train_batch_size": 2,
        "max_completion_length": 8,
        "max_steps": 2,
        "learning_rate": 5e-2,
        "beta": 0.0,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
        **overrides,
    }
    return GRPOConfig(output_dir=str(tmp_path / "out"), **kwargs)


def _forward_spy(module, log: list[tuple[bool, set[str], tuple[int, ...] | None]]):
    """Record (grad enabled, non-None kwargs, pixel_values_videos shape) for every forward of ``module``."""

    def spy(mod, args, kwargs):
        videos = kwargs.get("pixel_values_videos")
        shape = tuple(videos.shape) if videos is not None else None
        log.append((torch.is_grad_enabled(), {k for k, v in kwargs.items() if v is not None}, shape))

    return module.register_forward_pre_hook(spy, with_kwargs=True)


def test_video_tensors_reach_generation_and_loss_and_train_the_vision_tower(tmp_path) -> None:
    model, processor = build_tiny_policy(TinyModelParams())
    vision_before = {
        k: v.detach().clone() for k, v in model.named_parameters() if k.startswith("model.visual")
    }
    assert len(vision_before) > 10
    calls: list[tuple[bool, set[str]]] = []

    def spy(module, args, kwargs):
        calls.append((torch.is_grad_enabled(), {k for k, v in kwargs.items() if v is not None}))

    model.register_forward_pre_hook(spy, with_kwargs=True)
    vision_calls: list[bool] = []
    model.model.visual.register_forward_pre_hook(lambda m, a: vision_calls.append(torch.is_grad_enabled()))
    generate_keys: list[set[str]] = []
    original_generate = model.generate

    def generate_spy(*a, **kw):
        generate_keys.append({k for k, v in kw.items() if v is not None})
        return original_generate(*a, **kw)

    model.generate = generate_spy
    args = _args(tmp_path)
    trainer = build_trainer(
        model=model,
        reward_funcs=[_varied_reward],
        args=args,
        train_dataset=video_dataset(ROWS, _load_frames),
        processing_class=processor,
    )
    trainer.train()

    loss = [keys for grad, keys in calls if grad]
    # Generation: generate() gets the video tensors and the vision tower encodes them (without grad).
    assert len(generate_keys) == 2 and all(VIDEO_KEYS <= keys for keys in generate_keys), generate_keys
    assert False in vision_calls
    # Loss: every forward with grad carries the video, and the vision tower runs with grad.
    assert loss and all(VIDEO_KEYS <= keys for keys in loss), loss
    assert True in vision_calls
    vision_after = dict(model.named_parameters())
    changed = sum(not torch.equal(vision_before[k], vision_after[k].detach()) for k in vision_before)
    assert changed >= len(vision_before) // 2, f"only {changed}/{len(vision_before)} vision tensors changed"
    logged = trainer.state.log_history[0]
    assert "rewards/_varied_reward/mean" in logged and "frac_reward_zero_std" in logged


def test_video_reaches_policy_and_reference_model_with_kl_and_gradient_checkpointing(tmp_path) -> None:
    """beta > 0 builds TRL's reference model (from the policy's folder) and runs its pass; with gradient
    checkpointing on, both the reference pass and the checkpointed loss pass must get the video."""
    built, processor = build_tiny_policy(TinyModelParams())
    save_policy(built, processor, tmp_path / "base")  # TRL re-loads the reference from config._name_or_path
    model, processor = load_policy(tmp_path / "base")
    disable_kv_cache(model)  # as train() does with gradient checkpointing
    args = _args(tmp_path, beta=0.04, gradient_checkpointing=True)
    trainer = build_trainer(
        model=model,
        reward_funcs=[_varied_reward],
        args=args,
        train_dataset=video_dataset(ROWS, _load_frames),
        processing_class=processor,
    )
    assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
    policy_calls: list = []
    ref_calls: list = []
    _forward_spy(trainer.model, policy_calls)
    _forward_spy(trainer.ref_model, ref_calls)
    trainer.train()

    assert trainer.model.is_gradient_checkpointing
    loss_calls = [c for c in policy_calls if c[0]]
    assert loss_calls and all(VIDEO_KEYS <= keys for _, keys, _ in loss_calls), loss_calls
    # The reference pass: one no-grad forward per step, each with the batch's video.
    assert len(ref_calls) == 2 and not any(grad for grad, _, _ in ref_calls), ref_calls
    assert all(VIDEO_KEYS <= keys for _, keys, _ in ref_calls), ref_calls
    assert [shape for *_, shape in ref_calls] == [shape for *_, shape in loss_calls]
    steps = [h for h in trainer.state.log_history if "loss" in h and "kl" in h]
    assert len(steps) == 2 and trainer.state.global_step == 2
    assert all(math.isfinite(h["loss"]) and math.isfinite(h["kl"]) for h in steps), steps
    assert steps[-1]["kl"] > 0  # the policy moved away from the reference after step 1
