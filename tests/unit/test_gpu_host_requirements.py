"""configs/gpu-host-requirements.txt (the offline GPU-host install, README "GPU host") holds every runtime
dependency pyproject.toml pins, at the same version, and nothing the host brings itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HOST_OR_BUILT = {"torch", "torchvision", "sam2"}  # the host's CUDA pair; sam2 is built from its sdist


def _pins(lines: list[str]) -> dict[str, str]:
    reqs = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {canonicalize_name(r.name): str(r.specifier) for r in reqs}


def test_every_pinned_runtime_dependency_is_in_the_offline_set_at_its_pin(repo_root: Path) -> None:
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    wanted = _pins(
        project["dependencies"] + [r for r in project["optional-dependencies"]["dev"] if "pytest" in r]
    )
    offline = _pins((repo_root / "configs" / "gpu-host-requirements.txt").read_text().splitlines())
    missing = {n: v for n, v in wanted.items() if n not in HOST_OR_BUILT and offline.get(n) != v}
    assert missing == {}, (
        f"not in the offline set at their pins: {missing}; regenerate it (scripts/gpu_host_requirements.py)"
    )
    assert all(v.startswith("==") for v in offline.values())  # every entry pinned
    host = [n for n in offline if n in HOST_OR_BUILT or n.startswith(("nvidia-", "cuda-", "triton"))]
    assert host == []  # the host's own CUDA torch stays untouched
