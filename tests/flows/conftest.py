"""Fixtures shared by the flow tests: a real `mlflow server` on a free local port, and mlflow's global
tracking/registry URI pointed at a store for one test only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.servers import MLFLOW_SERVER_ENV, free_port, mlflow_server_command, server_process


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server --workers 1` on a free local port, killed (whole process group) at the end.

    It stays in the machine's network namespace: the session's Prefect test server, which flows in the
    same modules talk to, lives there (``tests.netns.loopback_only`` would put them out of its reach).
    """
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | MLFLOW_SERVER_ENV
    cmd = mlflow_server_command(folder, port)
    with server_process(cmd, f"{url}/health", folder / "server.log", env=env, cwd=folder, timeout_s=120):
        yield url


@pytest.fixture
def global_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``use(uri)`` points mlflow's module-level tracking and registry URIs (what ``models:/`` loading
    reads) at a store; both, and the environment variables mlflow exports with them, are reset after
    the test, so no later test talks to this store by accident."""
    import mlflow

    def use(uri: str) -> None:
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.setenv(var, uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)

    yield use
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
