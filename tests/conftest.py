"""Shared fixtures: the project environment, the real-format data in ../shared/data, GPU skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stvg.env import configure_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Tests never talk to a checkout's running team services by accident: a test that wants them points
# its own processes at them (tests/services/).
os.environ["STVG_SERVICES_ENV"] = "none"
configure_environment(REPO_ROOT)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-format data files beside the repository; tests using them skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-format data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if (
        os.environ.get("STVG_GPU_TESTS_ON") == "cpu"
    ):  # tests/gpu's code paths on the CPU (tests/gpu/conftest.py)
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA (run `make test-gpu` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
