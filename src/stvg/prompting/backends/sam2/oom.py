"""GPU failures on the SAM2 path: which are retried with less memory, and which end the process.

- **Out of memory** is retried with state offload and a halved window (the official code instead
  exits and a shell wrapper resets the GPU). Allocation failures inside cuDNN or cuBLAS say so
  without "out of memory" (``CUDNN_STATUS_ALLOC_FAILED``, ``CUBLAS_STATUS_ALLOC_FAILED``): retried too.
- A **sticky** CUDA error (illegal memory access, device-side assert, launch failure, ECC error)
  leaves the CUDA context unusable for the rest of the process: every later video would fail. It
  raises ``DeviceFailure``, which the prompt stage does not swallow per video: the process ends,
  the entries written so far stay, and a new process (a re-run, or a fresh worker) resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
OOM_MARKERS = ("out of memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed")
STICKY_MARKERS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "misaligned address",
    "illegal instruction",
    "uncorrectable ecc error",
    "cuda error: an illegal",
)
MAX_RETRIES = 3


class DeviceFailure(RuntimeError):
    """The GPU is in an unrecoverable state for this process (see the module docstring)."""


def classify(exc: BaseException) -> str:
    """``"oom"``, ``"sticky"`` or ``""`` (any other error) for an exception raised on the SAM2 path."""
    text = f"{type(exc).__name__}: {exc}".lower()
    if any(m in text for m in STICKY_MARKERS):
        return "sticky"
    if type(exc).__name__ == "OutOfMemoryError" or any(m in text for m in OOM_MARKERS):
        return "oom"
    return ""


def with_retries(run: Callable[[int, bool], T], window: int, offload: bool) -> tuple[T, int, int]:
    """``run(window, offload)``; on out-of-memory, again with offload and half the window.

    Returns the result, the window that worked and the number of retries. Raises ``DeviceFailure``
    on a sticky CUDA error, and the last error when retries are exhausted or the window is 2.
    """
    for retry in range(MAX_RETRIES + 1):
        try:
            return run(window, offload), window, retry
        except RuntimeError as exc:  # torch.OutOfMemoryError subclasses RuntimeError
            kind = classify(exc)
            if kind == "sticky":
                raise DeviceFailure(
                    f"CUDA error that leaves the GPU unusable for this process ({exc}); the process "
                    "stops so no later video fails on it: re-run to resume (finished entries are kept)"
                ) from exc
            if kind != "oom" or retry == MAX_RETRIES or window <= 2:
                raise
            log.warning("GPU out of memory (%s); retrying with window=%d and state offload", exc, window // 2)
        _empty_cuda_cache()  # after the handler: its traceback no longer holds the failed attempt's tensors
        window, offload = max(2, window // 2), True
    raise AssertionError("unreachable")


def _empty_cuda_cache() -> None:
    import gc

    gc.collect()  # the failed attempt's SAM2 state may sit in reference cycles
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
