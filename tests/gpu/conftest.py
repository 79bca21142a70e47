"""GPU tests: the paper-scale code paths on a real CUDA device (skipped without CUDA; `make test-gpu`).

``STVG_GPU_TESTS_ON=cpu`` runs the same tests on the CPU at small sizes instead of skipping them: how
``benchmarks/gpu_report.sh --dry-run`` (in CI) checks that they work before anyone spends GPU time on
them. What only a GPU can show (a real CUDA out-of-memory error, two GPUs) and the heaviest model
(SAM2.1-large, the same code path as tiny) skip there.
"""

from __future__ import annotations

import os

import pytest

ON_CPU = os.environ.get("STVG_GPU_TESTS_ON") == "cpu"
cuda_only = pytest.mark.skipif(ON_CPU, reason="needs a real CUDA device (STVG_GPU_TESTS_ON=cpu dry run)")


@pytest.fixture(scope="session")
def device() -> str:
    """The device the GPU tests run on: ``cuda``, or ``cpu`` in the dry run."""
    return "cpu" if ON_CPU else "cuda"


@pytest.fixture(scope="session")
def sam2_size() -> int:
    """SAM2 input size: the paper's 1024 px on a GPU, 128 px for the CPU dry run."""
    return 128 if ON_CPU else 1024


@pytest.fixture(scope="session")
def clip_frames() -> int:
    """Frames per synthetic clip."""
    return 6 if ON_CPU else 40


@pytest.fixture
def gpu_usable(device: str):
    """After the test: the device still computes correctly (an OOM or a crash may leave it unusable)."""
    yield
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    a = torch.ones(512, 512, device=device)
    assert float((a @ a).sum()) == 512.0**3
