"""A pipeline killed with SIGKILL leaves RUNNING runs behind; the next pipeline closes them.

Real processes throughout: ``python -m flows.pipeline`` runs in its own session with its own Prefect
home and the repository's MLflow store, is killed (SIGKILL, whole process group) while a dvc stage
runs, and a second pipeline process then finds the dead run's MLflow parent and stage runs and its
Prefect flow run, and marks them FAILED / CRASHED with a note.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.flows.test_pipeline_flow import _client, make_repo  # noqa: F401 - fixture
from tests.unit.test_fetch import server  # noqa: F401 - the 127.0.0.1 Range server fixture

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]

# A stage that says it started, then works for a long time unless the file `fast` exists.
STAGE = """
import pathlib, time
pathlib.Path("started").touch()
time.sleep(0 if pathlib.Path("fast").exists() else 600)
pathlib.Path("out.txt").write_text("done")
"""

FLOW_RUN_STATE = """
import json, sys
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    print(json.dumps(client.read_flow_run(sys.argv[1]).state.type.value))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect_home")  # the same Prefect database for every process
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
    return env


def _pipeline(repo: Path) -> list[str]:
    return [sys.executable, "-m", "flows.pipeline", "--params", str(repo / "params.yaml")]


def test_a_killed_pipeline_is_closed_by_the_next_one(make_repo, tmp_path: Path) -> None:  # noqa: F811
    make, _ = make_repo
    repo = make()
    (repo / "stage.py").write_text(textwrap.dedent(STAGE))
    spec = {"cmd": f"{sys.executable} stage.py", "outs": ["out.txt"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"work": spec}}))
    env = _env(tmp_path)

    killed = subprocess.Popen(
        _pipeline(repo),
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (repo / "started").exists():
        assert killed.poll() is None, "the pipeline ended before its stage started"
        assert time.monotonic() < deadline, "the stage did not start within 5 minutes"
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()

    client = _client(repo)
    (experiment,) = [e for e in client.search_experiments() if e.name == "stvg-test"]
    (dead,) = client.search_runs([experiment.experiment_id], "tags.`stvg.stages` = 'download,work'")
    assert dead.info.status == "RUNNING"  # what a SIGKILL leaves behind
    flow_run_id = dead.data.tags["prefect.flow_run_id"]

    (repo / "fast").touch()
    done = subprocess.run(
        _pipeline(repo), cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (new,) = [r for r in parents if r.info.run_id != dead.info.run_id]
    assert new.info.status == "FINISHED"
    stale = [r for r in runs if dead.info.run_id in (r.info.run_id, r.data.tags.get("mlflow.parentRunId"))]
    assert {r.info.run_name for r in stale} >= {"download", "work"}
    for run in stale:  # the parent, its finished download run and the stage it was killed in
        if run.info.run_name == "download":
            assert run.info.status == "FINISHED"
            continue
        assert run.info.status == "FAILED", run.info.run_name
        note = run.data.tags["stvg.reconciled"]
        assert f"process {dead.data.tags['stvg.owner.pid']}" in note and new.info.run_id in note

    state = subprocess.run(
        [sys.executable, "-c", FLOW_RUN_STATE, flow_run_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(state.stdout.strip().splitlines()[-1]) == "CRASHED"
