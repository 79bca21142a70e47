"""``up``, ``down`` and ``status`` over the four services, and the clients' env file ``up`` writes."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from flows.services import procs, secrets
from flows.services.base import Service
from flows.services.layout import (
    ADMIN_USER,
    DVC_BUCKET,
    ORDER,
    SERVICES_DIR_VAR,
    Layout,
    load_layout,
    save_state,
)
from flows.services.mlflow_server import MlflowServer
from flows.services.objectstore import ObjectStore
from flows.services.postgres import Postgres
from flows.services.prefect_server import PrefectServer
from stvg.env import SERVICES_DIR_NAME, format_env_file

ENV_HEADER = """Written by `stvg services up`: the client settings of this checkout's team services.
Loaded by `make run`, `stvg ...` and the flows (stvg.env); git-ignored, readable by its owner only.
Another clone uses the same services with STVG_SERVICES_ENV=<path of this file>."""
# How long an MLflow client retries a call before the flow fails naming the tracking server:
# backoff 1, 2, 4, 8, 16 s (about 30 s), so a server restart inside that window goes unnoticed.
CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}  # fmt: skip


@dataclass(frozen=True)
class ServiceState:
    """One line of ``status``."""

    name: str
    pid: int | None
    healthy: bool
    url: str
    log: str
    action: str = ""  # what `up`/`down` did: started, running, stopped, not running


def services(layout: Layout) -> list[Service]:
    """The four services of ``layout``, in start order, with the folder's secrets (created on first use)."""
    found = secrets.load_or_create(layout.secrets_file)
    classes: dict[str, type[Service]] = {
        "postgres": Postgres, "s3": ObjectStore, "mlflow": MlflowServer, "prefect": PrefectServer,
    }  # fmt: skip
    return [classes[name](layout, found) for name in ORDER]


def default_dir(root: Path) -> Path:
    """``$STVG_SERVICES_DIR``, else ``<root>/.services``."""
    return Path(os.environ.get(SERVICES_DIR_VAR) or Path(root) / SERVICES_DIR_NAME)


def up(services_dir: Path, repo: Path | None = None) -> list[ServiceState]:
    """Start what is not running and healthy (in order), write the env file, point DVC at the store."""
    layout = load_layout(services_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.root.chmod(0o711)  # the `postgres` user must enter it; nothing can be listed by others
    save_state(layout)
    states = []
    for service in services(layout):
        pid = service.pid()
        if pid is not None and (service.healthy() or _recovers(service, pid)):
            action = "running"
        else:
            if pid is not None:
                service.stop()
            pid, action = service.start(), "started"
        if isinstance(service, Postgres) and action == "running":
            service.ensure_databases()  # `start` creates them; a running server may predate a new one
        states.append(_state(service, action))
    write_env_file(layout)
    if repo is not None and (Path(repo) / ".dvc").is_dir():
        from flows import remote

        remote.ensure_remote(Path(repo), remote.settings_from_env(client_env(layout)))
    return states


def _recovers(service: Service, pid: int) -> bool:
    """A running service that is not healthy yet (still starting) gets a short grace period."""
    return (
        procs.wait_for(lambda: service.healthy() or not procs.alive(pid, service.markers()), 30)
        and service.healthy()
    )


def down(services_dir: Path) -> list[ServiceState]:
    """Stop, in reverse order, the processes this folder's pidfiles name; other processes are never touched."""
    layout = load_layout(services_dir)
    if not layout.root.is_dir():
        return []
    states = []
    for service in reversed(services(layout)):
        action = "stopped" if service.stop() else "not running"
        states.append(_state(service, action))
    layout.state_file.unlink(missing_ok=True)  # ports may be chosen again by the next `up`
    return states[::-1]


def status(services_dir: Path) -> list[ServiceState]:
    layout = load_layout(services_dir)
    if not layout.secrets_file.is_file():
        return []
    return [_state(service) for service in services(layout)]


def _state(service: Service, action: str = "") -> ServiceState:
    pid = service.pid()
    return ServiceState(
        service.name, pid, pid is not None and service.healthy(), service.url, str(service.log_path), action
    )


def client_env(layout: Layout) -> dict[str, str]:
    """What a client of the services needs: tracking server and credentials, Prefect API, DVC remote."""
    from flows.remote import RemoteSettings

    found = secrets.load_or_create(layout.secrets_file)
    dvc_remote = RemoteSettings(
        f"s3://{DVC_BUCKET}", layout.url("s3"), found["s3_access_key"], found["s3_secret_key"]
    )
    return {
        "MLFLOW_TRACKING_URI": layout.url("mlflow"),
        "MLFLOW_TRACKING_USERNAME": ADMIN_USER,
        "MLFLOW_TRACKING_PASSWORD": found["mlflow_admin"],
        **CLIENT_RETRIES,
        "PREFECT_API_URL": f"{layout.url('prefect')}/api",
        "PREFECT_API_AUTH_STRING": f"{ADMIN_USER}:{found['prefect_api']}",
        **dvc_remote.env(),
    }


def write_env_file(layout: Layout) -> Path:
    secrets.write_private(layout.env_file, format_env_file(client_env(layout), ENV_HEADER))
    return layout.env_file


def as_dicts(states: list[ServiceState]) -> list[dict[str, object]]:
    return [asdict(s) for s in states]
