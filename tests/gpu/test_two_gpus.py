"""A 2-process ``accelerate launch`` of ``stvg train`` on two GPUs (NCCL), where a machine has two."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gpu.conftest import cuda_only

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@cuda_only
def test_two_gpu_training_writes_once_and_both_ranks_train_on_their_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 GPUs, this machine has {torch.cuda.device_count()}")
    from tests.smoke.test_train_distributed import run_two_process_training

    rank0, rank1 = run_two_process_training(tmp_path)  # asserts the outputs, weights and single writer
    assert rank0["device"] == rank1["device"] == "cuda"
