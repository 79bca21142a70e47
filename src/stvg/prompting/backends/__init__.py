"""Tracking backends, by ``prompt.backend`` name: what each is, what code keys its entries, how to build it.

- ``sam2``: the paper's path (SAM2.1 image predictor box -> mask, video predictor propagation forward
  and backward, re-detection every ``redetect_every`` frames).
- ``synthetic_cpu``: the flat-colour stand-in that runs the embedded default on a laptop or in CI.

A backend's cache key hashes the shared prompting code (``SHARED_CODE``) and its own folder only, so
editing one backend never invalidates the other's mask-database entries (this module only names
them and is not hashed).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from stvg.config import PromptParams
from stvg.prompting.backends.base import BackendSpec, TrackingBackend, python_files

PACKAGE = Path(__file__).resolve().parents[1]  # src/stvg/prompting
OPERATIONAL_KEYS = ("executor", "ray")  # prompt.* keys that never enter a key (nor dvc.yaml's params)
SHARED_CODE = (
    "engine.py",
    "fill.py",
    "render.py",
    "sampling.py",
    "video.py",
    "maskdb.py",
    "detector.py",
    "composites.py",
    "identity",
    "backends/base.py",
)


def _build_sam2(p: PromptParams, device: str, seed: int) -> TrackingBackend:
    from stvg.prompting.backends.sam2 import Sam2Backend

    assert p.sam2 is not None
    return Sam2Backend(replace(p.sam2, checkpoint=sam2_checkpoint(p)), p.detect, device=device, seed=seed)


def sam2_checkpoint(p: PromptParams) -> str:
    """The local SAM2 checkpoint: a path, or a registered name found in ``weights/``; "" = random weights."""
    from stvg.prompting.weights import resolve_weights

    spec = p.sam2.checkpoint if p.sam2 is not None else ""
    return str(resolve_weights(spec)) if spec else ""


def _build_synthetic_cpu(p: PromptParams, device: str, seed: int) -> TrackingBackend:
    from stvg.prompting.backends.synthetic_cpu import SyntheticCpuBackend

    assert p.synthetic_cpu is not None
    return SyntheticCpuBackend(p.synthetic_cpu, p.detect)


BACKENDS: dict[str, BackendSpec] = {
    "sam2": BackendSpec("sam2", ("backends/sam2",), _build_sam2, non_output_keys=("offload_to_cpu",)),
    "synthetic_cpu": BackendSpec("synthetic_cpu", ("backends/synthetic_cpu",), _build_synthetic_cpu),
}


def build_backend(p: PromptParams, *, device: str = "cpu", seed: int = 0) -> TrackingBackend:
    """The backend ``p.backend`` names, built once per process (models load here)."""
    return BACKENDS[p.backend].build(p, device, seed)


def code_files(backend: str, package: Path = PACKAGE) -> list[Path]:
    """The files whose content decides what ``backend``'s entries hold."""
    return sorted({*python_files(package, SHARED_CODE), *BACKENDS[backend].code_files(package)})


def code_hash(backend: str, package: Path = PACKAGE) -> str:
    """SHA-256 of ``backend``'s code files (names relative to ``package``) and ``stvg/geometry.py``."""
    digest = hashlib.sha256()
    for f in code_files(backend, package):
        digest.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    digest.update(b"geometry.py\0" + (PACKAGE.parent / "geometry.py").read_bytes())
    return digest.hexdigest()


def output_params(p: PromptParams, device: str = "cpu") -> dict[str, Any]:
    """The prompt params that change what an entry holds (gate bounds and memory knobs left out).

    ``prompt.device`` enters as the resolved device kind (``cpu``/``cuda``, ``stvg.runtime``), and on
    the SAM2 path whether SAM2 fills mask holes there: both change the masks, so a database never
    mixes entries made under different ones.
    """
    from stvg.config import params_to_dict
    from stvg.runtime import device_kind, sam2_hole_filling

    out = params_to_dict(p)
    for gate in ("max_churn", "max_repairs_per_video", "max_failed_fraction"):
        out.pop(gate)
    for operational in OPERATIONAL_KEYS:  # where and how fast videos are prompted, not what an entry holds
        out.pop(operational)
    out["device"] = device_kind(device)
    if p.backend == "sam2":
        out["sam2_hole_filling"] = sam2_hole_filling(device) == "on"
    section = out[p.backend]
    for key in BACKENDS[p.backend].non_output_keys:
        section.pop(key)
    return {k: v for k, v in out.items() if k not in BACKENDS or k == p.backend}
