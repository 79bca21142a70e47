"""`stvg lineage … --checkout DIR` with real git, DVC (a local-folder remote) and an MLflow sqlite store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from flows import dvc
from flows.checkout import CheckoutError, checkout
from flows.registry import LINEAGE_ARTIFACT_DIR

pytestmark = pytest.mark.slow  # a dozen `dvc` commands, ~1 s each

STAGE = {"stages": {"double": {"cmd": "cat data/a.txt data/a.txt > out.txt", "deps": ["data"],
                               "params": ["factor"], "outs": ["out.txt"]}}}  # fmt: skip


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def trained(tmp_path: Path) -> dict:
    """Repo A after a `dvc repro` + push to a folder remote, and an MLflow run holding its pins."""
    repo = tmp_path / "A"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "a.txt").write_text("alpha\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(STAGE))
    (repo / "params.yaml").write_text("factor: 2\n")
    _git(repo, "init", "-q")
    dvc.ensure_repo(repo)
    (repo / ".gitignore").write_text("/data\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "code")  # the pins dvc writes below stay uncommitted, as in the pipeline
    dvc.add("data", cwd=repo)
    (repo / "params.yaml").write_text("factor: 3\n")  # the run's params differ from the committed ones
    dvc.run_dvc("repro", cwd=repo)
    dvc.run_dvc("remote", "add", "--local", "-d", "stvg", str(tmp_path / "remote"), cwd=repo)
    dvc.run_dvc("push", cwd=repo)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("checkout", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    for name in ("dvc.lock", "data.dvc", "params.yaml"):
        client.log_artifact(run_id, str(repo / name), LINEAGE_ARTIFACT_DIR)
    info = {"run_id": run_id, "git_commit": _git(repo, "rev-parse", "HEAD"), "git_dirty": "false"}
    return {"repo": repo, "client": client, "info": info}


def test_checkout_gives_a_fresh_clone_the_exact_inputs_and_a_clean_dvc_status(
    trained: dict, tmp_path: Path
) -> None:
    repo, target = trained["repo"], tmp_path / "B"
    _git(tmp_path, "clone", "-q", str(repo), str(target))
    assert not (target / "out.txt").exists() and not (target / "dvc.lock").exists()
    result = checkout(trained["client"], trained["info"], target, source_root=repo)
    assert result.clean and result.status == {}
    assert (
        result.files == ["dvc.lock", "data.dvc", "params.yaml"]
        and result.commit == trained["info"]["git_commit"]
    )
    for name in ("dvc.lock", "data.dvc", "params.yaml", "out.txt", "data/a.txt"):
        assert (target / name).read_bytes() == (repo / name).read_bytes(), name
    assert (target / ".dvc" / "config.local").is_file()  # the remote came with it, not through git
    assert (
        _git(target, "status", "--porcelain", "--untracked-files=no") == "M params.yaml"
    )  # the run's params

    again = checkout(trained["client"], trained["info"], target, source_root=repo)  # idempotent
    assert again.clean


def test_checkout_refuses_what_it_cannot_make_exact(trained: dict, tmp_path: Path) -> None:
    client, info, repo = trained["client"], trained["info"], trained["repo"]
    with pytest.raises(CheckoutError, match="is not the top of a git clone"):
        checkout(client, info, tmp_path / "nowhere", source_root=repo)
    lonely = tmp_path / "lonely"
    _git(tmp_path, "clone", "-q", str(repo), str(lonely))
    with pytest.raises(CheckoutError, match="has no DVC remote to pull from"):
        checkout(client, info, lonely, source_root=lonely)
    assert not (lonely / "dvc.lock").exists() and _git(lonely, "status", "--porcelain") == ""  # untouched
    target = tmp_path / "B"
    _git(tmp_path, "clone", "-q", str(repo), str(target))
    with pytest.raises(CheckoutError, match=f"commit {'f' * 40} is not in .*fetch"):
        checkout(client, info | {"git_commit": "f" * 40}, target, source_root=repo)
