"""Give another clone a registered model's exact inputs: ``stvg lineage MODEL_URI --checkout DIR``.

In the git clone DIR: check out the model's commit, write the run's copies of ``dvc.lock``,
``data.dvc`` and ``params.yaml`` (logged at registration: the pins ``dvc repro`` wrote may never have
been committed), point DVC at the remote (the services' env, else this checkout's remote), ``dvc pull``
the raw data and every cached stage output, and report ``dvc status``, which is clean when DIR holds
exactly what the model was trained and evaluated on. Only those three pin files are overwritten; any
other local change in DIR makes ``git checkout`` refuse, and the command says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from flows import dvc, remote
from flows.registry import LINEAGE_ARTIFACT_DIR

PIN_FILES = ("dvc.lock", "data.dvc", "params.yaml")


class CheckoutError(RuntimeError):
    """DIR cannot receive the model's inputs; the message names the cause and the fix."""


@dataclass
class CheckoutResult:
    """What ``--checkout`` did, and whether DIR is clean afterwards."""

    target: str
    commit: str
    files: list[str]
    remote: str
    status: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.status

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"clean": self.clean}

    def text(self) -> str:
        state = (
            "clean: DIR holds the model's inputs" if self.clean else f"NOT clean: {json.dumps(self.status)}"
        )
        lines = [f"checked out {self.commit[:12]} into {self.target}", f"  pins:       {', '.join(self.files)}",
                 f"  remote:     {self.remote}", f"  dvc status: {state}"]  # fmt: skip
        return "\n".join(lines + [f"  warning:    {w}" for w in self.warnings])


def checkout(client: MlflowClient, info: dict[str, Any], target: Path, source_root: Path) -> CheckoutResult:
    """Check out the model described by ``info`` (``flows.lineage.model_lineage``) into the clone ``target``."""
    target = Path(target).resolve()
    _require_clone(target)
    dvc.ensure_repo(target)
    url = _ensure_remote(target, Path(source_root))  # before anything tracked changes
    commit = str(info.get("git_commit") or "")
    _git_checkout(target, commit)
    files = _restore_pins(client, str(info["run_id"]), target)
    dvc.run_dvc("pull", cwd=target, stream=True)
    status = json.loads(dvc.run_dvc("status", "--json", cwd=target).strip() or "{}")
    warnings = []
    if info.get("git_dirty") == "true":
        warnings.append("the model was trained from uncommitted changes to tracked files; code may differ")
    return CheckoutResult(str(target), commit, files, url, status, warnings)


def _git(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(target), *args], capture_output=True, text=True, check=False)


def _require_clone(target: Path) -> None:
    top = _git(target, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != target:
        raise CheckoutError(
            f"{target} is not the top of a git clone: `git clone <repository> {target}` first"
        )


def _git_checkout(target: Path, commit: str) -> None:
    if not commit or _git(target, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise CheckoutError(
            f"commit {commit or '(none recorded)'} is not in {target}: `git -C {target} fetch` it, or push it "
            "from the clone that trained the model"
        )
    tracked = _git(target, "ls-files", "--", *PIN_FILES).stdout.split()
    if tracked:  # earlier pins written here are ours to replace
        _git(target, "checkout", "HEAD", "--", *tracked)
    done = _git(target, "checkout", "--quiet", commit)
    if done.returncode != 0:
        raise CheckoutError(f"`git checkout {commit}` in {target} failed: {done.stderr.strip()}")


def _restore_pins(client: MlflowClient, run_id: str, target: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="stvg-pins-") as tmp:
        folder = Path(client.download_artifacts(run_id, LINEAGE_ARTIFACT_DIR, tmp))
        found = [name for name in PIN_FILES if (folder / name).is_file()]
        if "dvc.lock" not in found or "data.dvc" not in found:
            raise CheckoutError(
                f"run {run_id} holds no {LINEAGE_ARTIFACT_DIR}/dvc.lock and data.dvc; it was registered "
                "before they were logged, so its exact pins cannot be restored"
            )
        for name in found:
            shutil.copyfile(folder / name, target / name)
    return found


def _ensure_remote(target: Path, source_root: Path) -> str:
    """The services' remote (env), else a copy of this checkout's local remote settings; error if none."""
    url = remote.ensure_remote(target)
    local = source_root / ".dvc" / "config.local"
    if not url and local.is_file() and source_root.resolve() != target:
        shutil.copyfile(local, target / ".dvc" / "config.local")
        url = remote.ensure_remote(target)
    if not url:
        raise CheckoutError(
            f"{target} has no DVC remote to pull from: point it at the team's services "
            "(STVG_SERVICES_ENV=<their .services/env>) or add one (`dvc remote add -d --local …`)"
        )
    return url
