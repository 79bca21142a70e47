"""What every managed service has: a folder, a pidfile, a log, ports, a health check, start and stop."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from flows.services import procs
from flows.services.layout import PORTS_ENV_VAR, Layout

START_TIMEOUT_S = 180.0  # Prefect's first start migrates its database: ~1 min on 2 cores


class Service:
    """A process started detached by ``up`` and stopped by PID by ``down``.

    Subclasses give the command line (``argv``), its environment (``env``), the markers that identify
    the process in ``/proc/<pid>/cmdline`` and the health check; ``prepare`` writes config files first.
    """

    name = ""
    port_fields: tuple[str, ...] = ()  # fields of Ports this service listens on (the first is its API)

    def __init__(self, layout: Layout, secrets: Mapping[str, str]) -> None:
        self.layout, self.secrets = layout, secrets

    @property
    def folder(self) -> Path:
        return self.layout.dir(self.name)

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def ports(self) -> list[int]:
        return [getattr(self.layout.ports, f) for f in self.port_fields]

    @property
    def url(self) -> str:
        return self.layout.url(self.port_fields[0])

    def markers(self) -> Sequence[str]:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Write config files the process reads (called before each start)."""

    def healthy(self) -> bool:
        raise NotImplementedError

    def pid(self) -> int | None:
        """The PID from our pidfile while that process still runs as this service; else None."""
        pid = procs.read_pid(self.pidfile)
        return pid if procs.alive(pid, self.markers()) else None

    def start(self) -> int:
        """Start the process and wait until it is healthy; ServiceError naming the cause and the log."""
        self.check_ports_free()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prepare()
        proc = procs.spawn(self.argv(), self.log_path, self.env(), self.folder)
        self.pidfile.write_text(f"{proc.pid}\n", encoding="utf-8")
        self.wait_healthy(proc.pid, lambda: proc.poll() is not None)
        return proc.pid

    def wait_healthy(self, pid: int, exited: Callable[[], bool]) -> None:
        """Wait for the health check; ServiceError if the process exits first or never gets healthy."""
        ok = procs.wait_for(lambda: self.healthy() or exited(), START_TIMEOUT_S)
        if exited():
            raise procs.ServiceError(
                f"{self.name} exited while starting; last lines of {self.log_path}:\n{procs.log_tail(self.log_path)}"
            )
        if not ok or not self.healthy():
            raise procs.ServiceError(
                f"{self.name} (pid {pid}) not healthy after {START_TIMEOUT_S:.0f} s at {self.url}; "
                f"see {self.log_path}:\n{procs.log_tail(self.log_path)}"
            )

    def stop(self) -> bool:
        """Stop our process (by the PID in our pidfile); True when one was running."""
        pid = procs.read_pid(self.pidfile)
        stopped = procs.terminate_group(pid, self.markers()) if pid else False
        self.pidfile.unlink(missing_ok=True)
        return stopped

    def check_ports_free(self) -> None:
        for field, port in zip(self.port_fields, self.ports):
            if procs.port_in_use(port):
                raise procs.ServiceError(
                    f"{self.name}: port {port} on 127.0.0.1 is already taken by a process this checkout "
                    f"did not start; stop that process, or choose another port: `stvg services down`, "
                    f"then `{PORTS_ENV_VAR}={field}=<free port> stvg services up`"
                )
