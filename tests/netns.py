"""Run a test's servers in a network namespace that holds only loopback: nothing they do leaves the machine.

``loopback_only()`` moves the calling thread (the test) into a fresh network namespace with ``lo`` up
(``unshare(CLONE_NEWNET)``, as ``unshare --net`` does), so every server it starts inherits it and the
test still reaches them on 127.0.0.1; on exit the thread returns to the namespace it came from. It
needs root (CAP_SYS_ADMIN); where the kernel refuses, the test runs in the machine's namespace with
a warning, its servers still bound to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import warnings
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def loopback_only() -> Iterator[bool]:
    """Inside: a network namespace with only ``lo`` (yields True), or the machine's (False, warned)."""
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            warnings.warn(
                f"cannot create a network namespace ({os.strerror(errno)}); servers run in the machine's "
                "network namespace, bound to 127.0.0.1",
                stacklevel=3,
            )
            yield False
            return
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield True
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the original network namespace")
    finally:
        os.close(original)
