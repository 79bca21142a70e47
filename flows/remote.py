"""The DVC remote on the team's object store, and the push that follows a successful pipeline run.

The remote's settings come from the services' env file (``STVG_DVC_REMOTE_URL``, ``…_ENDPOINT_URL``,
``…_ACCESS_KEY_ID``, ``…_SECRET_ACCESS_KEY``; ``stvg services up`` writes them) and are written to the
checkout's ``.dvc/config.local`` (git-ignored: the credentials never reach git, and the tracked
``.dvc/config`` stays clean, so runs are not registered as ``git_dirty``). A checkout whose default
remote is another one (e.g. a team's committed remote) is left as it is.

After a successful run the pipeline pushes data, stage outputs and the run cache (``dvc push
--run-cache``) and records the outcome on the MLflow run (``dvc.pushed``, ``dvc.remote``, ``dvc.push``)
and on the registered version (``dvc_pushed``: true once its data reached the remote). A store that is down is reported as "NOT pushed" with
the cause; the run itself stays FINISHED (its results are in MLflow) and says how to push later.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mlflow import MlflowClient

from flows import dvc, tracking

REMOTE_NAME = "stvg"
ENV_URL = "STVG_DVC_REMOTE_URL"
ENV_ENDPOINT = "STVG_DVC_ENDPOINT_URL"
ENV_KEY_ID = "STVG_DVC_ACCESS_KEY_ID"
ENV_SECRET = "STVG_DVC_SECRET_ACCESS_KEY"
CONNECT_TIMEOUT_S = 3.0
PUSHED_TAG = "dvc.pushed"
VERSION_PUSHED_TAG = "dvc_pushed"
_MAX_TAG_CHARS = 5000


@dataclass(frozen=True)
class RemoteSettings:
    """An S3 remote: bucket URL, endpoint (S3-compatible stores) and keys."""

    url: str
    endpoint: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""

    def env(self) -> dict[str, str]:
        """The env-file entries that describe this remote."""
        values = {ENV_URL: self.url, ENV_ENDPOINT: self.endpoint, ENV_KEY_ID: self.access_key_id}
        return {k: v for k, v in (values | {ENV_SECRET: self.secret_access_key}).items() if v}


@dataclass(frozen=True)
class PushOutcome:
    """Whether ``dvc push`` put everything on the remote, and what to tell the user."""

    pushed: bool
    remote: str
    message: str

    def line(self) -> str:
        where = self.remote or "(no remote)"
        return (
            f"pushed to {where}: {self.message}" if self.pushed else f"NOT pushed to {where}: {self.message}"
        )


def settings_from_env(environ: Mapping[str, str] = os.environ) -> RemoteSettings | None:
    if not environ.get(ENV_URL):
        return None
    return RemoteSettings(
        environ[ENV_URL],
        environ.get(ENV_ENDPOINT, ""),
        environ.get(ENV_KEY_ID, ""),
        environ.get(ENV_SECRET, ""),
    )


def default_remote(repo: Path) -> tuple[str, dict[str, str]] | None:
    """The default remote's name and options, merged from ``.dvc/config`` and ``.dvc/config.local``."""
    from configobj import ConfigObj

    merged: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        path = Path(repo) / ".dvc" / name
        if path.is_file():
            for section, options in ConfigObj(str(path), encoding="utf-8").items():
                if isinstance(options, Mapping):
                    merged.setdefault(section, {}).update({k: str(v) for k, v in options.items()})
    name = merged.get("core", {}).get("remote", "")
    return (name, merged.get(f'remote "{name}"', {})) if name else None


def ensure_remote(repo: Path, settings: RemoteSettings | None = None) -> str:
    """Make ``settings`` (default: from the env) the default remote in config.local; returns its URL ("" = none).

    Does nothing when the checkout already uses exactly these settings, or another default remote.
    """
    settings = settings or settings_from_env()
    current = default_remote(repo)
    if settings is None or (current and current[0] != REMOTE_NAME):
        return current[1].get("url", "") if current else ""
    wanted = {"url": settings.url, "endpointurl": settings.endpoint, "access_key_id": settings.access_key_id,
              "secret_access_key": settings.secret_access_key}  # fmt: skip
    wanted = {k: v for k, v in wanted.items() if v}
    if current and all(current[1].get(k) == v for k, v in wanted.items()):
        return settings.url
    dvc.run_dvc("remote", "add", "--local", "--force", "--default", REMOTE_NAME, settings.url, cwd=repo)
    for option, value in wanted.items():
        if option != "url":
            dvc.run_dvc("remote", "modify", "--local", REMOTE_NAME, option, value, cwd=repo)
    return settings.url


def store_unreachable(endpoint: str) -> str:
    """Why an S3 endpoint cannot be reached ("" when a TCP connection opens)."""
    parsed = urlparse(endpoint)
    if not parsed.hostname:
        return ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S):
            return ""
    except OSError as exc:
        return f"the object store at {endpoint} is not reachable ({exc.strerror or exc})"


def push(repo: Path) -> PushOutcome:
    """``dvc push --run-cache`` to the default remote; never raises (the outcome says what happened)."""
    try:
        url = ensure_remote(repo)
        endpoint = (default_remote(repo) or ("", {}))[1].get("endpointurl", "")
    except dvc.DvcError as exc:
        return PushOutcome(False, "", f"the DVC remote could not be configured: {exc}")
    if not url:
        return PushOutcome(
            False, "", "no DVC remote configured (`stvg services up` sets one up); nothing pushed"
        )
    later = "push later with `dvc push --run-cache`"
    down = store_unreachable(endpoint) if endpoint else ""
    if down:
        return PushOutcome(False, url, f"{down}; nothing pushed: start it (`stvg services up`), then {later}")
    try:
        out = dvc.run_dvc("push", "--run-cache", cwd=repo)
    except dvc.DvcError as exc:
        return PushOutcome(False, url, f"{exc}\n{later}")
    summary = [line for line in out.strip().splitlines() if line.strip()]
    return PushOutcome(True, url, summary[-1] if summary else "everything up to date")


def push_after_run(client: MlflowClient, run_id: str, root: Path, model_version: str = "") -> PushOutcome:
    """Push, then record the outcome on the run and on the registered version (``models:/name/N``)."""
    outcome = push(root)
    tracking.log_tags(
        client,
        run_id,
        {PUSHED_TAG: str(outcome.pushed).lower(), "dvc.remote": outcome.remote or "none",
         "dvc.push": outcome.message[:_MAX_TAG_CHARS]},
    )  # fmt: skip
    if model_version.startswith("models:/"):
        name, version = model_version.removeprefix("models:/").rsplit("/", 1)
        tags = client.get_model_version(name, version).tags
        if outcome.pushed or VERSION_PUSHED_TAG not in tags:  # once on the remote, it stays there
            client.set_model_version_tag(name, version, VERSION_PUSHED_TAG, str(outcome.pushed).lower())
    return outcome
