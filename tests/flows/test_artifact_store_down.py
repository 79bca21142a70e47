"""A tracking server whose artifact store fails: supporting artifacts are skipped, tagged and listed;
the tracking server itself going away still fails loudly.

The fault is real: the server's ``--artifacts-destination`` folder is replaced by a file, so the
server answers every upload with an error while runs, params and tags keep working (as with the team
services' object store down).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows import artifacts, tracking
from tests.servers import MLFLOW_SERVER_ENV, free_port, mlflow_server_command, server_process


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "_store_down", {})
    monkeypatch.setattr(artifacts, "_missing", {})
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # one attempt per request: fast failures


def _break(store: Path) -> None:
    shutil.rmtree(store)
    store.write_text("a file where the server expects its artifact folder\n")


def test_uploads_go_on_without_a_failing_artifact_store_and_the_run_says_so(
    tmp_path: Path, fresh_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, server = free_port(), tmp_path / "server"
    server.mkdir()
    url = f"http://127.0.0.1:{port}"
    cmd = mlflow_server_command(server, port)
    env = os.environ | MLFLOW_SERVER_ENV
    with server_process(cmd, f"{url}/health", server / "server.log", env=env, cwd=server, timeout_s=120):
        client = MlflowClient(url)
        run_id = client.create_run(client.create_experiment("artifacts")).info.run_id
        summary = tmp_path / "summary.json"
        summary.write_text('{"videos": 3}\n')
        assert artifacts.upload(client, run_id, summary, "prompt")
        assert [a.path for a in client.list_artifacts(run_id, "prompt")] == ["prompt/summary.json"]

        _break(server / "artifacts")
        assert not artifacts.upload(client, run_id, summary, "label")  # the server refuses: skipped
        started = time.monotonic()
        tracking.log_json_artifact(client, run_id, {"ok": True}, "report.json", "checks")
        tracking.log_file_artifact(client, run_id, tmp_path, "evaluate/plots")  # a folder
        assert time.monotonic() - started < 2.0  # not sent again while the store is down

        expected = ["label/summary.json", "checks/report.json", "evaluate/plots"]
        assert artifacts.missing(run_id) == expected
        tags = client.get_run(run_id).data.tags
        assert tags[artifacts.INCOMPLETE_TAG] == "true"
        assert tags[artifacts.MISSING_TAG] == "3 not uploaded: " + ", ".join(expected)
        assert tags[artifacts.ERROR_TAG]  # the server's answer, for whoever investigates

        (server / "artifacts").unlink()
        (server / "artifacts").mkdir()
        monkeypatch.setattr(artifacts, "RETRY_AFTER_S", 0.0)  # a long-lived process tries again later
        assert artifacts.upload(client, run_id, summary, "label")
        assert [a.path for a in client.list_artifacts(run_id, "label")] == ["label/summary.json"]

    with pytest.raises(Exception) as down:  # the tracking server itself gone: never silently skipped
        artifacts.upload(client, run_id, summary, "evaluate")
    assert "127.0.0.1" in str(down.value)
    assert artifacts.missing(run_id) == expected


def test_a_local_store_that_cannot_write_fails_loudly(tmp_path: Path, fresh_state: None) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = tmp_path / "artifacts"
    store.mkdir()
    experiment = client.create_experiment("local", artifact_location=store.as_uri())
    run_id = client.create_run(experiment).info.run_id
    _break(store)
    summary = tmp_path / "summary.json"
    summary.write_text("{}\n")
    with pytest.raises(OSError):
        artifacts.upload(client, run_id, summary, "prompt")
    assert artifacts.missing(run_id) == []
