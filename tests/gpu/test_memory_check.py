"""The train stage's memory check on a real GPU: it reads the device's size and name, and what it says the
run holds is really allocated once the optimizer has its state."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tests.gpu.conftest import cuda_only

pytestmark = [pytest.mark.gpu, cuda_only]


def test_the_check_reads_the_real_device_and_its_estimate_is_allocated(device: str, gpu_usable: None) -> None:
    import copy
    import gc

    import torch

    from stvg.config import TinyModelParams
    from stvg.training.memory import GpuMemoryError
    from stvg.training.policy import build_tiny_policy
    from stvg.training.train import check_gpu_memory

    gc.collect()  # models of earlier tests held only by reference cycles would be freed mid-test otherwise
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    model, _ = build_tiny_policy(TinyModelParams())
    model.to(device)
    reference = copy.deepcopy(model)
    args = SimpleNamespace(device=device, optim="adamw_torch", beta=0.04)
    held = check_gpu_memory(model, args, 0.9, sharded=False)
    n = sum(t.numel() for t in model.parameters())
    assert held is not None and held.total == 5 * n * 4  # fp32: policy, reference, gradients, 2 states
    total = torch.cuda.mem_get_info(device)[1]
    with pytest.raises(GpuMemoryError, match=re.escape(torch.cuda.get_device_name(device))):
        check_gpu_memory(model, args, held.total / total / 2, sharded=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sum(p.float().sum() for p in model.parameters()).backward()
    optimizer.step()  # states exist now; gradients kept (zero_grad not called)
    assert torch.cuda.memory_allocated(device) - before >= held.total
    del reference
