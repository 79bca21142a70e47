"""Thin wrappers around the ``dvc`` command line, for the flows (the library never shells out to dvc).

Each call runs ``python -m dvc`` with the interpreter running the flow, so the project's pinned DVC
is used whatever is on PATH. A failing command raises ``DvcError`` with the command, the folder and
the tail of its stderr. Hash readers parse ``dvc.lock`` / ``.dvc`` files directly (no subprocess).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000


class DvcError(RuntimeError):
    """A dvc command failed or a DVC file is missing/malformed; the message says which and why."""


def run_dvc(
    *args: str, cwd: Path | str = ".", env: Mapping[str, str] | None = None, stream: bool = False
) -> str:
    """Run ``dvc ARGS`` in ``cwd``; returns its output, raises DvcError with the output's tail.

    With ``stream`` the command's output (stage logs, progress bars) is echoed to this process's
    stderr as it comes, so long stages show their progress in the flow's terminal.
    """
    command = [sys.executable, "-m", "dvc", *args]
    # Stage commands call `stvg`: put this interpreter's scripts folder (the venv's bin/) first on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    full_env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", **(env or {})}
    log.info("dvc %s (in %s)", " ".join(args), cwd)
    try:
        if stream:
            returncode, out, err = _run_streaming(command, cwd, full_env)
        else:
            done = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
            returncode, out, err = done.returncode, done.stdout, done.stderr
    except OSError as exc:
        raise DvcError(f"could not start `dvc {' '.join(args)}` in {cwd}: {exc}") from exc
    if returncode != 0:
        tail = (err or out).strip()[-STDERR_TAIL_CHARS:]
        raise DvcError(f"`dvc {' '.join(args)}` failed in {cwd} (exit {returncode}):\n{tail}")
    return out


def _run_streaming(command: list[str], cwd: Path | str, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run with stdout+stderr merged, echoing to stderr; keeps the whole output for the caller."""
    chunks: list[bytes] = []
    sink = getattr(sys.stderr, "buffer", None)
    with subprocess.Popen(
        command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            chunks.append(chunk)
            if sink is not None:
                sink.write(chunk)
            else:
                sys.stderr.write(chunk.decode("utf-8", errors="replace"))
            sys.stderr.flush()
        returncode = proc.wait()
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return returncode, text, text if returncode else ""


def ensure_repo(cwd: Path | str = ".") -> None:
    """``dvc init`` when the git repository has no DVC yet; analytics off either way."""
    cwd = Path(cwd)
    if not (cwd / ".dvc").is_dir():
        run_dvc("init", "--quiet", cwd=cwd)
    config = cwd / ".dvc" / "config"
    if "analytics = false" not in (config.read_text(encoding="utf-8") if config.is_file() else ""):
        run_dvc("config", "core.analytics", "false", cwd=cwd)  # each dvc call costs ~1 s: only when unset


def add(path: Path | str, cwd: Path | str = ".") -> Path:
    """``dvc add PATH``; returns the ``.dvc`` file that now pins it."""
    run_dvc("add", "--quiet", str(path), cwd=cwd)
    return Path(cwd) / f"{path}.dvc"


def repro(stage: str, cwd: Path | str = ".", env: Mapping[str, str] | None = None) -> str:
    """``dvc repro STAGE`` (a no-op when nothing it depends on changed); returns dvc's output."""
    return run_dvc("repro", stage, cwd=cwd, env=env, stream=True)


def dvc_file_hash(path: Path | str) -> str:
    """The md5 a ``.dvc`` file pins (``data.dvc`` -> the raw-data version)."""
    outs = _read_yaml(Path(path)).get("outs") or []
    if len(outs) != 1 or "md5" not in outs[0]:
        raise DvcError(f"{path} must pin exactly one output with an md5; run `dvc add` on it again")
    return str(outs[0]["md5"])


def lock_hashes(cwd: Path | str = ".") -> dict[str, dict[str, str]]:
    """Output hashes per stage from ``dvc.lock``: {stage: {out path: md5}} ({} before the first repro)."""
    lock = Path(cwd) / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = _read_yaml(lock).get("stages") or {}
    return {
        name: {str(o["path"]): str(o.get("md5", "")) for o in (stage.get("outs") or [])}
        for name, stage in stages.items()
    }


def pipeline_stages(cwd: Path | str = ".") -> list[str]:
    """Stage names declared in ``dvc.yaml``, in file order ([] when there is no dvc.yaml)."""
    path = Path(cwd) / "dvc.yaml"
    if not path.is_file():
        return []
    return list((_read_yaml(path).get("stages") or {}).keys())


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DvcError(f"{path} not found; run the download flow (make run) first")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DvcError(
            f"{path} is not valid YAML ({exc}); restore it with `git checkout {path.name}`"
        ) from exc
    if not isinstance(data, dict):
        raise DvcError(f"{path} must be a YAML mapping")
    return data
