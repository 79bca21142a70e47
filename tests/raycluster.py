"""A Ray head on loopback only, for tests and benchmarks: ``inside_loopback_namespace`` re-runs a
Python module in a fresh network namespace holding only ``lo`` (``unshare --net``, as root), and
``RayHead`` starts a one-node cluster there (``num_cpus`` given, no dashboard, no usage stats) and
stops it by PID. Nothing of Ray runs outside such a namespace.

Measured: outside one, Ray records the machine's external interface as its node address and binds
its gRPC ports on every interface even with ``--node-ip-address=127.0.0.1``; inside, 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "token"}
# Token authentication on, with a token of this run's own: explicit, so a token file another run left
# in ~/.ray cannot switch the head and the drivers to different modes (measured: "InvalidAuthToken").
RAY_TOKEN = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)


def namespace_unavailable() -> str:
    """Why a loopback-only namespace cannot be made here ('' when it can)."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace (unshare --net)"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    return f"needs {' and '.join(missing)} (util-linux, iproute2)" if missing else ""


def project_env(**extra: str) -> dict[str, str]:
    """This checkout's code first on the path (driver and Ray workers inherit it)."""
    path = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env = {**os.environ, "PYTHONPATH": path, "STVG_ROOT": str(REPO), **RAY_ENV, "RAY_AUTH_TOKEN": RAY_TOKEN}
    return {**env, **extra}


def inside_loopback_namespace(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m module args`` in a new network namespace with only loopback up."""
    command = f"ip link set lo up && exec {sys.executable} -m {module} " + " ".join(map(_quote, args))
    return subprocess.run(
        ["unshare", "--net", "bash", "-c", command],
        check=False,
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """``ray start --head --block`` on 127.0.0.1 (call inside the namespace); ``address`` for drivers."""

    def __init__(self, num_cpus: int = 2) -> None:
        port = free_port()
        self.temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit
        self.address = f"127.0.0.1:{port}"
        command = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            "--object-store-memory=300000000",  # bytes; tests move small objects only
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
        ]
        self.log = Path(self.temp_dir) / "ray-start.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=project_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 180) -> None:
        """Until ``ray start`` says the runtime is up (the GCS port alone answers before the raylet is in)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
                )
            if "Ray runtime started" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the Ray head on {self.address} did not come up in {timeout} s")

    def stop(self) -> None:
        """SIGTERM to ``ray start --block`` (it stops the processes it started), SIGKILL to its group after."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # anything of the cluster still in its group
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
