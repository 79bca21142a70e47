"""What this machine computes on: the torch device a stage runs on, and the SAM2 features it has.

``prompt.device``, ``detector.device`` and ``evaluate.device`` take ``auto | cpu | cuda | cuda:N``.
``auto`` is CUDA when torch sees a GPU, else the CPU, so one ``params.yaml`` runs on a laptop and on a
GPU host. Asking for CUDA where there is none is an error naming the key (silently falling back would
run SAM2.1-large on the CPU for hours).

Determinism: the device kind (``cpu`` or ``cuda``) can change what a stage writes (SAM2 runs under
bfloat16 autocast on CUDA, float32 on the CPU; CUDA kernels are not bit-reproducible). The *resolved*
kind, not the ``auto`` spelling, is therefore part of every mask-database entry key, together with
whether SAM2's hole filling ran (``sam2_hole_filling``); the other stages record the device in their
unhashed ``summary.json``. The GPU index (``cuda:0`` vs ``cuda:1``) and the GPU model are not keyed.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N"
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def is_device_spec(spec: str) -> bool:
    """Whether ``spec`` is one of ``DEVICE_CHOICES``."""
    return isinstance(spec, str) and _DEVICE_RE.fullmatch(spec) is not None


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (False when torch itself is missing)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(spec: str, key: str = "device") -> str:
    """The torch device for ``spec``: ``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``.

    Raises ``ValueError`` naming ``key`` for a malformed spec or for CUDA requested without a GPU.
    """
    if not is_device_spec(spec):
        raise ValueError(f"`{key}` must be one of {DEVICE_CHOICES}, got {spec!r}")
    if spec == "auto":
        return "cuda" if cuda_available() else "cpu"
    if spec.startswith("cuda"):
        if not cuda_available():
            raise ValueError(
                f"`{key}: {spec}` but torch sees no CUDA GPU (torch.cuda.is_available() is False); "
                "use `auto` or `cpu`, or install a CUDA build of torch"
            )
        import torch

        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"`{key}: {spec}` but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    return spec


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda``: the part of a device that can change outputs (the index cannot)."""
    return device.split(":")[0]


def device_report(device: str) -> dict[str, Any]:
    """What a stage summary records about the device it ran on."""
    out: dict[str, Any] = {"device": device, "device_kind": device_kind(device)}
    if device_kind(device) == "cuda":
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        out["device_name"] = torch.cuda.get_device_name(index)
        out["cuda_version"] = torch.version.cuda
    return out


@functools.cache
def sam2_extension_built() -> bool:
    """Whether SAM2's compiled ``_C`` extension (connected components, CUDA only) is importable."""
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


def sam2_hole_filling(device: str) -> str:
    """Whether SAM2's post-processing fills small mask holes here, and if not, why.

    SAM2 fills holes of <= 8 low-res pixels with its ``_C`` CUDA kernel; without the extension, or on
    the CPU, it warns and skips the step (masks keep those holes). The PyPI sdist builds without it
    unless installed with ``SAM2_BUILD_CUDA=1`` on a machine with the CUDA toolkit (see README).
    """
    if device_kind(device) != "cuda":
        return "off: the CPU has no hole-filling kernel"
    if not sam2_extension_built():
        return "off: sam2._C is not built (reinstall sam2 with SAM2_BUILD_CUDA=1 and nvcc)"
    return "on"


def triton_c_compiler() -> str | None:
    """The C compiler Triton builds its kernel launchers with, as Triton looks for it ($CC, else gcc,
    else clang on PATH), or None."""
    import os
    import shutil

    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")


def python_headers() -> Path:
    """Where Triton looks for ``Python.h`` (its launcher is a C extension of this interpreter)."""
    import sysconfig

    scheme = sysconfig.get_default_scheme()
    scheme = "posix_prefix" if scheme == "posix_local" else scheme  # Debian's, as Triton maps it
    return Path(sysconfig.get_paths(scheme=scheme)["include"]) / "Python.h"


def require_one_gpu_per_process(n_gpu: int) -> None:
    """Fail before any model loads where one training process sees several GPUs.

    Without a distributed launcher, transformers' ``Trainer`` counts every visible GPU (``n_gpu``) and
    would wrap the model in ``nn.DataParallel``; TRL's GRPOTrainer refuses that, but only once the
    policy (minutes for a 7B) has loaded.
    """
    if n_gpu > 1:
        raise RuntimeError(
            f"stvg train: this one process sees {n_gpu} GPUs, which GRPO cannot use without a launcher. "
            "Make one visible (CUDA_VISIBLE_DEVICES=0 make run, for the one-GPU sets) or launch training "
            "with accelerate (README: training the 7B policy on 8 GPUs)"
        )


def require_triton_compiler(device: str) -> None:
    """Fail before any model loads where TRL's CUDA loss kernels cannot be built.

    On CUDA with Triton installed, TRL compiles Triton kernels for the GRPO log-probabilities at the
    first training step; Triton builds their launcher as a C extension, which needs a C compiler and
    this Python's headers. Minimal CUDA runtime images lack both; without this check the run would load
    the model and generate before failing.
    """
    import importlib.util

    if device_kind(device) != "cuda" or importlib.util.find_spec("triton") is None:
        return
    missing = []
    if triton_c_compiler() is None:
        missing.append("a C compiler ($CC unset, no gcc or clang on PATH): apt-get install gcc, or set CC")
    if not (headers := python_headers()).is_file():
        missing.append(f"this Python's headers ({headers}): apt-get install python3-dev")
    if missing:
        raise RuntimeError(
            "GRPO on CUDA: TRL compiles Triton kernels for its loss at the first step, which needs "
            + "; and ".join(missing)
        )
