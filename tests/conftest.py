"""Shared fixtures: the project environment, the real-format data in ../shared/data, the trained
detector of the embedded default, GPU skip."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

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


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def up_to_date_weights(repo: Path) -> Path | None:
    """The detector stage's weights when dvc.lock records them for the current params and code."""
    weights, lock = repo / "artifacts" / "detector" / "weights.pt", repo / "dvc.lock"
    if not (weights.is_file() and lock.is_file()):
        return None
    stage = yaml.safe_load(lock.read_text(encoding="utf-8")).get("stages", {}).get("detector", {})
    current = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    locked = stage.get("params", {}).get("params.yaml", {})
    if any(locked.get(k) != current.get(k) for k in ("detector", "synthetic")):
        return None
    declared = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["detector"]["deps"]
    if sorted(declared) != sorted(d["path"] for d in stage.get("deps", [])):
        return None  # dvc.yaml's dependencies changed since the lock was written
    if any(_md5(repo / d["path"]) != d.get("md5") for d in stage.get("deps", [])):
        return None
    outs = {o["path"]: o.get("md5") for o in stage.get("outs", [])}
    return weights if outs.get("artifacts/detector/weights.pt") == _md5(weights) else None


@pytest.fixture(scope="session")
def trained_detector_path(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's detector, once per session: the detector stage's weights when dvc.lock
    says they are current (``make run`` made them), else trained here from params.yaml (~4 min on 2
    idle cores), so tests run on a fresh clone too and never use a stale detector."""
    weights = up_to_date_weights(repo_root)
    if weights is None:
        from stvg.stages import detector as stage

        out = tmp_path_factory.mktemp("detector") / "detector"
        assert stage.main(["--params", str(repo_root / "params.yaml"), "--out", str(out)]) == 0
        weights = out / "weights.pt"
    return weights


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
