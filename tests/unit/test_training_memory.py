"""training.memory: what plain GRPO training holds on the GPU for its whole run, and the refusal before the
first step when that leaves too little for activations (Qwen2.5-VL-7B with AdamW on one 80 GB GPU)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stvg.training.memory import GIB, GpuMemoryError, check_fits, static_memory

H100_BYTES = int(79.2 * GIB)  # what an 80 GB H100 reports (torch.cuda.mem_get_info)
H200_BYTES = int(139.8 * GIB)


def qwen25_vl_7b_params() -> int:
    """Parameters of the real Qwen2.5-VL-7B architecture, built on the meta device (no memory)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from benchmarks.gpu_grpo_step import QWEN25_VL_7B_TEXT, QWEN25_VL_7B_VISION

    config = Qwen2_5_VLConfig(
        text_config=QWEN25_VL_7B_TEXT, vision_config=QWEN25_VL_7B_VISION, tie_word_embeddings=False
    )
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    return sum(t.numel() for t in model.parameters())


@pytest.fixture(scope="module")
def n_7b() -> int:
    n = qwen25_vl_7b_params()
    assert 8.2e9 < n < 8.4e9  # Qwen2.5-VL-7B-Instruct: 8.29 B parameters
    return n


def test_adamw_for_the_7b_policy_is_refused_on_an_h100_and_fits_an_h200(n_7b: int) -> None:
    static = static_memory(n_7b, n_7b, param_bytes=2, optim="adamw_torch_fused", with_reference=True)
    assert static is not None
    assert round(static.weights / GIB, 1) == round(static.gradients / GIB, 1) == 15.4
    assert round(static.optimizer / GIB, 1) == 30.9 and round(static.total / GIB, 1) == 77.2
    with pytest.raises(GpuMemoryError, match=r"77\.2 GiB.*cuda:0.*train\.grpo\.optim: adafactor"):
        check_fits(static, H100_BYTES, 0.9, "cuda:0")
    check_fits(static, H200_BYTES, 0.9, "cuda:0")
    check_fits(static, H100_BYTES, 0.0, "cuda:0")  # 0: no check


def test_adafactor_or_no_reference_changes_what_is_held(n_7b: int) -> None:
    adafactor = static_memory(n_7b, n_7b, param_bytes=2, optim="adafactor", with_reference=True)
    assert adafactor is not None and adafactor.optimizer == 0
    assert round(adafactor.total / GIB, 1) == 46.3
    check_fits(adafactor, H100_BYTES, 0.9, "cuda:0")
    no_ref = static_memory(n_7b, n_7b, param_bytes=2, optim="adamw_8bit", with_reference=False)
    assert no_ref is not None and no_ref.reference == 0 and no_ref.optimizer == 2 * n_7b
    frozen_vision = static_memory(n_7b, n_7b // 2, param_bytes=4, optim="adamw_torch", with_reference=False)
    assert frozen_vision is not None and frozen_vision.optimizer == 2 * (n_7b // 2) * 4
    assert static_memory(n_7b, n_7b, 2, "paged_adamw_8bit", True) is None  # pages to the host: not estimated


def test_the_stage_check_reads_the_trainers_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring of ``train.check_gpu_memory``: device, optimizer and beta from the GRPOConfig. The
    GPU's size is injected (no GPU here); tests/gpu runs the same on a real one."""
    import torch

    from stvg.config import TinyModelParams
    from stvg.training.policy import build_tiny_policy
    from stvg.training.train import check_gpu_memory

    model, _ = build_tiny_policy(TinyModelParams())
    n = sum(t.numel() for t in model.parameters())
    args = SimpleNamespace(device="cuda:0", optim="adamw_torch", beta=0.04)
    assert (
        check_gpu_memory(model, SimpleNamespace(**{**vars(args), "device": "cpu"}), 0.9, sharded=False)
        is None
    )
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (0, 5 * n * 4))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "a small GPU")
    with pytest.raises(GpuMemoryError, match=r"cuda:0 \(a small GPU\)"):
        check_gpu_memory(
            model, args, 0.9, sharded=False
        )  # fp32: 1 + 1 + 1 + 2 = 5 copies of the weights > 0.9 x 5
    held = check_gpu_memory(model, SimpleNamespace(**{**vars(args), "beta": 0.0}), 0.9, sharded=False)
    assert held is not None and held.reference == 0 and held.total == 4 * n * 4
    assert check_gpu_memory(model, args, 0.9, sharded=True) is None  # DeepSpeed or FSDP: not checked
