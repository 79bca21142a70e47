"""GPU failures on the SAM2 path: which are retried with less memory, and which end the process.

- **Out of memory** is retried with state offload and a halved window (the official code instead
  exits and a shell wrapper resets the GPU). Allocation failures inside cuDNN or cuBLAS say so
  without "out of memory" (``CUDNN_STATUS_ALLOC_FAILED``, ``CUBLAS_STATUS_ALLOC_FAILED``, cuDNN 9's
  "unable to find an engine", which it raises when no engine's workspace fits): retried too. The
  failed attempt's frames are cleared and only its message is logged, so its tensors can be freed.
- A **sticky** CUDA error (illegal memory access, device-side assert, launch failure, ECC error)
  leaves the CUDA context unusable for the rest of the process: every later video would fail. It
  raises ``DeviceFailure``, which the prompt stage does not swallow per video: the process ends,
  the entries written so far stay, and a new process (a re-run, or a fresh worker) resumes.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
OOM_MARKERS = (
    "out of memory",
    "cudnn_status_alloc_failed",
    "cublas_status_alloc_failed",
    "unable to find an engine",  # cuDNN 9 when no convolution engine fits the memory left for its workspace
)
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


def headline(exc: BaseException) -> str:
    """The first non-empty line of the error's message (what names the error), else its type's name."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def classify(exc: BaseException) -> str:
    """``"oom"``, ``"sticky"`` or ``""`` (any other error) for an exception raised on the SAM2 path.

    Only the message's first line names the error: torch appends a fixed footer to every CUDA error
    ("... to enable device-side assertions", "Device-side assertions were explicitly omitted ..."),
    which would read as a device-side assert and make a recoverable error look sticky.
    """
    if type(exc).__name__ == "OutOfMemoryError":  # torch's allocator: always recoverable
        return "oom"
    text = f"{type(exc).__name__}: {headline(exc)}".lower()
    if any(m in text for m in STICKY_MARKERS):
        return "sticky"
    if any(m in text for m in OOM_MARKERS):
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
            reason = headline(exc)
            traceback.clear_frames(exc.__traceback__)  # the failed attempt's frames hold its GPU tensors
            # the message only: a handler that keeps records (pytest's, a queue) would keep the traceback
            log.warning(
                "GPU out of memory (%s); retrying with window=%d and state offload", reason, window // 2
            )
        _empty_cuda_cache()  # after the handler: nothing holds the failed attempt's tensors any more
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
