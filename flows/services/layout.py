"""Where the services live and which ports they use: the one source of every services default.

Ports are fixed by the first ``up`` (written to ``.services/state.json``) so ``status``, ``down`` and
restarts find the same ones; ``STVG_SERVICES_PORTS="mlflow=5001,prefect=4201"`` chooses others
before that first ``up`` (or after a ``down`` that removed the state).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

HOST = "127.0.0.1"  # every service binds here and nowhere else
PORTS_ENV_VAR = "STVG_SERVICES_PORTS"
SERVICES_DIR_VAR = "STVG_SERVICES_DIR"  # the services folder, when not <repo>/.services
ORDER = ("postgres", "s3", "mlflow", "prefect")  # start order; `down` goes backwards
MLFLOW_BUCKET = "mlflow"
DVC_BUCKET = "dvc"
ADMIN_USER = "admin"  # MLflow's and Prefect's basic-auth user
DATABASES = {"mlflow": ("mlflow", "mlflow_auth"), "prefect": ("prefect",)}  # role -> its databases
MLFLOW_WORKERS = 2  # one per core here; raise on a bigger host
AUTH_CACHE_TTL_S = 60  # MLflow basic-auth: verify a password once a minute, not on every request
REGION = "us-east-1"  # S3 region name the clients send (SeaweedFS ignores it)


@dataclass(frozen=True)
class Ports:
    """Listening ports on 127.0.0.1 (SeaweedFS adds each HTTP port + 10000 for its gRPC twin)."""

    postgres: int = 15432
    s3: int = 8333
    s3_master: int = 9333
    s3_volume: int = 9340
    s3_filer: int = 8888
    s3_admin: int = 23646
    mlflow: int = 5000
    prefect: int = 4200


@dataclass(frozen=True)
class Layout:
    """The services folder and the ports in use."""

    root: Path
    ports: Ports

    def dir(self, service: str) -> Path:
        return self.root / service

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def pgpass_file(self) -> Path:
        return self.root / "pgpass"

    def url(self, service: str) -> str:
        return f"http://{HOST}:{getattr(self.ports, service)}"


def load_layout(root: Path) -> Layout:
    """The layout of ``root``: ports from its state file, else the defaults with the env overrides."""
    root = Path(root).resolve()
    state = root / "state.json"
    if state.is_file():
        saved = json.loads(state.read_text(encoding="utf-8")).get("ports", {})
        known = {f.name for f in fields(Ports)}
        return Layout(root, Ports(**{k: int(v) for k, v in saved.items() if k in known}))
    return Layout(root, ports_from_env(os.environ.get(PORTS_ENV_VAR, "")))


def ports_from_env(text: str) -> Ports:
    """``"mlflow=5001,prefect=4201"`` applied over the defaults; a clear error for a bad entry."""
    ports = Ports()
    known = {f.name for f in fields(Ports)}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in known or not value.strip().isdigit():
            raise ValueError(
                f"{PORTS_ENV_VAR}: bad entry {item!r}; use NAME=PORT with NAME one of {', '.join(sorted(known))}"
            )
        ports = replace(ports, **{name.strip(): int(value)})
    return ports


def save_state(layout: Layout) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.state_file.write_text(
        json.dumps({"ports": asdict(layout.ports)}, indent=2) + "\n", encoding="utf-8"
    )
