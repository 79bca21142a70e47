"""The services manager without starting servers: secrets, the env file, PID safety, port clashes."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from flows.services import cli, manager, secrets
from flows.services.layout import load_layout
from flows.services.objectstore import ObjectStore
from flows.services.procs import ServiceError
from stvg.env import read_env_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_private_and_shell_safe(tmp_path: Path) -> None:
    path = tmp_path / ".services" / "secrets.json"
    first = secrets.load_or_create(path)
    assert set(first) == set(secrets.NAMES)
    assert all(value.isalnum() and len(value) >= 20 for value in first.values())
    assert len(set(first.values())) == len(first)
    assert _mode(path) == 0o600
    assert secrets.load_or_create(path) == first  # reused: the databases were created with them


def test_env_file_gives_clients_what_they_need_and_no_server_secret(tmp_path: Path) -> None:
    layout = load_layout(tmp_path / ".services")
    found = secrets.load_or_create(layout.secrets_file)
    env = read_env_file(manager.write_env_file(layout))
    assert _mode(layout.env_file) == 0o600
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["MLFLOW_TRACKING_PASSWORD"] == found["mlflow_admin"]
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert (
        env["STVG_DVC_REMOTE_URL"] == "s3://dvc" and env["STVG_DVC_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    )
    assert "@" not in env["MLFLOW_TRACKING_URI"]  # credentials never ride in a URI (they would be logged)
    server_only = {found[n] for n in ("postgres", "mlflow_db", "prefect_db", "mlflow_flask", "s3_admin")}
    assert not server_only & set(env.values())


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    layout = load_layout(tmp_path / ".services")
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        for service in manager.services(layout):
            service.folder.mkdir(parents=True, exist_ok=True)
            service.pidfile.write_text(f"{stranger.pid}\n")  # e.g. a PID recycled since the last `up`
        states = manager.down(layout.root)
        assert {s.name: s.action for s in states} == dict.fromkeys(
            ["postgres", "s3", "mlflow", "prefect"], "not running"
        )
        assert stranger.poll() is None  # still running
    finally:
        stranger.kill()
        stranger.wait()


def test_a_taken_port_is_named_with_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("STVG_SERVICES_PORTS", f"s3={port}")
        layout = load_layout(tmp_path / ".services")
        store = ObjectStore(layout, secrets.load_or_create(layout.secrets_file))
        with pytest.raises(
            ServiceError, match=rf"s3: port {port} on 127.0.0.1 is already taken.*STVG_SERVICES_PORTS=s3="
        ):
            store.start()
        assert store.pid() is None and not store.pidfile.exists()  # nothing was started


def test_status_of_a_checkout_without_services(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--dir", str(tmp_path / ".services"), "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["services"] == []
