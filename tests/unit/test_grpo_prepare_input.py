"""Under DeepSpeed the Trainer casts every float input of generation to the engine's dtype (bf16). The
video's ``second_per_grid_ts`` sets its MRoPE time positions, so the trainer keeps it float32 there, as
the loss passes do: rollouts are sampled under the positions the loss scores. DeepSpeed cannot run on
this CPU, so its dtype is injected where the Trainer reads it."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from stvg.training.grpo import _video_grpo_trainer_class


def _trainer_under_deepspeed_bf16():
    trainer = object.__new__(_video_grpo_trainer_class())  # only what Trainer._prepare_input reads
    trainer.args = SimpleNamespace(device=torch.device("cpu"))
    trainer.is_deepspeed_enabled = True
    plugin = SimpleNamespace(hf_ds_config=SimpleNamespace(dtype=lambda: torch.bfloat16))
    trainer.accelerator = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin))
    return trainer


def _time_positions(second_per_grid_ts: torch.Tensor, grid_t: int = 30) -> list[int]:
    """Qwen2.5-VL's own temporal positions of a video (tokens_per_second = 2)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    grid = torch.tensor([grid_t, 2, 2])
    interval = 2 * second_per_grid_ts[0]
    return Qwen2_5_VLModel.get_vision_position_ids(None, 0, grid, 1, 2, interval)[0].unique().tolist()


def test_generation_keeps_the_video_time_positions_under_deepspeed_bf16() -> None:
    seconds = torch.tensor([0.96])  # 2 sampled frames per grid step at 2.08 fps
    inputs = {
        "input_ids": torch.tensor([[1, 2, 3]]),
        "pixel_values_videos": torch.rand(4, 8),
        "second_per_grid_ts": seconds,
    }
    prepared = _trainer_under_deepspeed_bf16()._prepare_input(inputs)
    assert list(prepared) == list(inputs)
    assert prepared["pixel_values_videos"].dtype == torch.bfloat16  # the Trainer's cast, as before
    assert prepared["input_ids"].dtype == torch.int64
    assert prepared["second_per_grid_ts"].dtype == torch.float32
    assert _time_positions(prepared["second_per_grid_ts"]) == _time_positions(seconds)
    assert _time_positions(seconds.to(torch.bfloat16)) != _time_positions(seconds)  # what the cast did


def test_inputs_without_video_timing_take_the_trainers_path() -> None:
    prepared = _trainer_under_deepspeed_bf16()._prepare_input({"pixel_values": torch.rand(2, 3)})
    assert prepared["pixel_values"].dtype == torch.bfloat16
    assert _trainer_under_deepspeed_bf16()._prepare_input([torch.rand(2)])[0].dtype == torch.bfloat16
