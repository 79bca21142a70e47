"""The DVC remote and the post-run push, with the real `dvc` command in a temporary git repository."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from flows import dvc, remote

pytestmark = pytest.mark.slow  # a dozen `dvc` commands, ~1 s each


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC repository with one tracked data folder, committed."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("alpha\n")
    _git(root, "init", "-q")
    dvc.ensure_repo(root)
    dvc.add("data", cwd=root)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "data")
    return root


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_remote_credentials_go_to_config_local_only(repo: Path) -> None:
    settings = remote.RemoteSettings("s3://dvc", "http://127.0.0.1:8333", "KEYID", "SECRETVALUE")
    assert remote.ensure_remote(repo, settings) == "s3://dvc"
    local = (repo / ".dvc" / "config.local").read_text()
    assert "SECRETVALUE" in local and "endpointurl = http://127.0.0.1:8333" in local
    assert "SECRETVALUE" not in (repo / ".dvc" / "config").read_text()
    assert _git(repo, "status", "--porcelain") == ""  # nothing for git to see: no secret, no dirty tree
    assert remote.default_remote(repo) == (
        "stvg",
        {"url": "s3://dvc", "endpointurl": "http://127.0.0.1:8333", "access_key_id": "KEYID",
         "secret_access_key": "SECRETVALUE"},
    )  # fmt: skip


def test_a_team_remote_already_configured_is_left_alone(repo: Path) -> None:
    dvc.run_dvc("remote", "add", "-d", "team", "s3://team-bucket", cwd=repo)
    settings = remote.RemoteSettings("s3://dvc", "http://127.0.0.1:8333", "KEYID", "SECRET")
    assert remote.ensure_remote(repo, settings) == "s3://team-bucket"
    assert not (repo / ".dvc" / "config.local").exists()


def test_push_without_a_remote_says_nothing_was_pushed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(remote.ENV_URL, raising=False)
    outcome = remote.push(repo)
    assert not outcome.pushed and "no DVC remote configured" in outcome.line()


def test_push_to_a_store_that_is_down_is_reported_not_pushed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    for key, value in remote.RemoteSettings("s3://dvc", endpoint, "KEYID", "SECRET").env().items():
        monkeypatch.setenv(key, value)
    outcome = remote.push(repo)
    assert not outcome.pushed and outcome.remote == "s3://dvc"
    assert outcome.line().startswith(
        "NOT pushed to s3://dvc: the object store at " + endpoint + " is not reachable"
    )
    assert "dvc push --run-cache" in outcome.message  # how to push once it is back


def test_push_puts_the_data_on_a_reachable_remote(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    dvc.run_dvc("remote", "add", "--local", "-d", "stvg", str(store), cwd=repo)
    outcome = remote.push(repo)
    assert outcome.pushed, outcome.message
    assert sum(1 for p in store.rglob("*") if p.is_file()) >= 2  # the file and the folder listing
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    dvc.run_dvc("remote", "add", "--local", "-d", "stvg", str(store), cwd=clone)
    dvc.run_dvc("pull", cwd=clone)
    assert (clone / "data" / "a.txt").read_text() == "alpha\n"
