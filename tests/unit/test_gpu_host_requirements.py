"""configs/gpu-host-requirements.txt (the offline GPU-host install, README "GPU host") holds every runtime
dependency pyproject.toml pins, at the same version, everything those need, and nothing the host brings
itself."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

HOST_OR_BUILT = {"torch", "torchvision", "sam2"}  # the host's CUDA pair; sam2 is built from its sdist
BUILT = {"sam2", "antlr4-python3-runtime", "iopath"}  # scripts/gpu_host_wheels.sh builds these
TARGETS = (
    {"python_full_version": "3.11.0", "python_version": "3.11"},
    {"python_full_version": "3.12.0", "python_version": "3.12"},
)


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
    assert _host_stack() & offline.keys() == set()  # the host's own CUDA torch stays untouched


def _host_stack() -> set[str]:
    """torch, torchvision, triton and the CUDA libraries torch requires by name (the host has its own)."""
    torch_needs = {canonicalize_name(Requirement(r).name) for r in metadata.requires("torch") or []}
    return {"torch", "torchvision", "triton"} | {n for n in torch_needs if n.startswith(("nvidia-", "cuda-"))}


def test_the_offline_set_is_closed_under_its_packages_requirements(repo_root: Path) -> None:
    """pip installs it with --no-deps: a requirement of a listed package that is neither listed, built nor
    brought by the host would be missing there (nvidia-ml-py, which ultralytics needs, once was)."""
    offline = _pins((repo_root / "configs" / "gpu-host-requirements.txt").read_text().splitlines())
    available = offline.keys() | BUILT | _host_stack()
    missing, not_here = {}, set()
    for name in offline:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            not_here.add(name)
            continue
        for raw in requires:
            req = Requirement(raw)
            needed = req.marker is None or any(req.marker.evaluate(t | {"extra": ""}) for t in TARGETS)
            if needed and canonicalize_name(req.name) not in available:
                missing.setdefault(name, []).append(req.name)
    assert missing == {}, f"required but not in the offline set: {missing}; regenerate it"
    assert not_here <= {"async-timeout"}  # needed before Python 3.11.3 only (redis), so not installed here


def test_the_wheel_script_adds_no_second_version_of_a_listed_package(repo_root: Path) -> None:
    """pip refuses ``wheels/*.whl`` holding two versions of one package (setuptools 81 beside 84 once)."""
    offline = _pins((repo_root / "configs" / "gpu-host-requirements.txt").read_text().splitlines())
    script = (repo_root / "scripts" / "gpu_host_wheels.sh").read_text()
    named = {canonicalize_name(m) for m in re.findall(r"\b([A-Za-z0-9_.-]+)==[0-9]", script)}
    assert named and named & offline.keys() == set()


def test_the_listed_setuptools_suits_every_host_torch_seen(repo_root: Path) -> None:
    offline = _pins((repo_root / "configs" / "gpu-host-requirements.txt").read_text().splitlines())
    version = offline["setuptools"].removeprefix("==")
    torch_211 = SpecifierSet("<82")  # torch 2.11.0's Requires-Dist (GPU hosts)
    torch_here = next(Requirement(r) for r in metadata.requires("torch") or [] if r.startswith("setuptools"))
    assert version in torch_211 and version in torch_here.specifier
