"""Processes the services manager starts: detached spawn with a pidfile and a log, PID-checked stop, health.

A pidfile alone is not trusted: a PID counts as ours only while ``/proc/<pid>/cmdline`` still carries
the service's marker (its data folder or port), so a recycled PID is never signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from flows.services.layout import HOST

LOG_TAIL_CHARS = 2000


class ServiceError(RuntimeError):
    """A service could not start or stop; the message names it, the cause, its log and the fix."""


def spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so its workers form one process group), output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int | None, markers: Sequence[str]) -> bool:
    """Whether ``pid`` runs and is the process we started (its command line contains every marker)."""
    if not pid or _proc_state(pid) in ("", "Z"):
        return False
    line = cmdline(pid)
    return all(marker in line for marker in markers)


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def terminate_group(pid: int, markers: Sequence[str], timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group led by ``pid`` (if it is ours), SIGKILL after ``timeout_s``; True if stopped."""
    if not alive(pid, markers):
        return False
    _signal_group(pid, signal.SIGTERM)
    if not wait_for(lambda: not alive(pid, markers), timeout_s):
        _signal_group(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid, markers), 10)
    _reap(pid)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def http_status(url: str, timeout_s: float = 3.0) -> int | None:
    """The HTTP status of a GET (no credentials), or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def log_tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"


def run(argv: Sequence[str], what: str, env: Mapping[str, str] | None = None, timeout_s: float = 120) -> str:
    """Run a short command; ServiceError with its output when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            check=False,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"{what}: could not run `{argv[0]}`: {exc}") from exc
    if done.returncode != 0:
        raise ServiceError(
            f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-LOG_TAIL_CHARS:]}"
        )
    return done.stdout
