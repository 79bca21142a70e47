"""One GRPO step of the tiny policy on the GPU in bfloat16 with gradient checkpointing and a reference
model (beta > 0): the paper's training settings, with the video in every forward pass."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

SAMPLING = {"native_fps": 10.0, "n_frames": 40, "frame_indices": [0, 10, 20, 30], "width": 56, "height": 56}
VIDEO_KEYS = {"pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids"}


def _frames(video_id: str) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(int(video_id[1:]))
    return rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8), dict(SAMPLING)


def _varied_reward(completions, **kwargs) -> list[float]:
    from stvg.training.rewards import completion_text

    return [float(len(completion_text(c)) % 5) for c in completions]  # group variance: a gradient


def test_one_bf16_grpo_step_with_gradient_checkpointing(
    tmp_path: Path, device: str, gpu_usable: None
) -> None:
    import torch
    from trl import GRPOConfig

    from stvg.config import TinyModelParams
    from stvg.training.grpo import build_trainer, video_dataset
    from stvg.training.policy import build_tiny_policy, disable_kv_cache, load_policy, save_policy

    built, processor = build_tiny_policy(TinyModelParams())
    save_policy(built, processor, tmp_path / "base")  # TRL builds the reference model from this folder
    model, processor = load_policy(tmp_path / "base", device=device, dtype="bfloat16")
    disable_kv_cache(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    rows = [
        {"sample_id": f"s{i}", "video_id": f"v{i}", "query": "the red square", "start_s": 0.5, "end_s": 2.0}
        for i in range(2)
    ]
    rows = [{**r, "target_id": 1} for r in rows]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=16,
        max_steps=1,
        learning_rate=1e-2,
        beta=0.04,
        loss_type="grpo",
        bf16=True,
        gradient_checkpointing=True,
        use_cpu=device == "cpu",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
    )
    trainer = build_trainer(
        model=model,
        reward_funcs=[_varied_reward],
        args=args,
        train_dataset=video_dataset(rows, _frames),
        processing_class=processor,
    )
    calls: list[tuple[bool, set[str], torch.dtype | None]] = []

    def spy(module, a, kwargs):
        videos = kwargs.get("pixel_values_videos")
        calls.append(
            (
                torch.is_grad_enabled(),
                {k for k, v in kwargs.items() if v is not None},
                videos.dtype if videos is not None else None,
            )
        )

    trainer.model.register_forward_pre_hook(spy, with_kwargs=True)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()

    assert trainer.state.global_step == 1 and trainer.model.is_gradient_checkpointing
    step = next(h for h in trainer.state.log_history if "loss" in h)
    assert math.isfinite(step["loss"]) and math.isfinite(step["kl"])
    assert all(p.dtype == torch.bfloat16 and p.device.type == device for p in trainer.model.parameters())
    assert trainer.ref_model is not None and next(trainer.ref_model.parameters()).device.type == device
    loss_calls = [c for c in calls if c[0]]
    assert loss_calls and all(VIDEO_KEYS <= keys for _, keys, _ in loss_calls)
    changed = sum(not torch.equal(before[k], p.detach()) for k, p in trainer.model.named_parameters())
    assert changed > len(before) // 2, f"only {changed}/{len(before)} tensors changed in bf16"
    if device == "cuda":
        assert torch.cuda.max_memory_allocated() > 0
