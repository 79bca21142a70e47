"""Generated credentials of the services, kept in ``.services/secrets.json`` (mode 600, never in git).

Created once on the first ``up`` and reused after: the databases and the users are created with them.
Only letters and digits, so a value survives any shell, URL or config file unquoted.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

NAMES = (
    "postgres",  # PostgreSQL superuser
    "mlflow_db",  # role `mlflow` (MLflow's store and its auth store)
    "prefect_db",  # role `prefect`
    "mlflow_admin",  # MLflow basic-auth admin
    "mlflow_flask",  # MLflow's CSRF secret key
    "prefect_api",  # Prefect server basic auth
    "s3_access_key",
    "s3_secret_key",
    "s3_admin",  # SeaweedFS admin server
)
_ALPHABET = string.ascii_letters + string.digits
_LENGTH = 32


def generate() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


def load_or_create(path: Path) -> dict[str, str]:
    """The stored secrets, adding any missing name (an older file keeps its values)."""
    stored: dict[str, str] = {}
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
    missing = [name for name in NAMES if not stored.get(name)]
    if missing:
        stored.update({name: generate() for name in missing})
        stored["s3_access_key"] = stored["s3_access_key"][:20].upper()
        write_private(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return stored


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (created 600, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
