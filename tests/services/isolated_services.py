"""The team services for real: `stvg services up` (PostgreSQL, SeaweedFS S3, MLflow, Prefect), the pipeline
against them from two clones, load, faults and security.

Runs only inside a network namespace whose one interface is loopback (tests/services/test_services.py
makes one with `unshare --net` and runs this module there), so nothing any server does can leave the
machine and the default ports clash with nothing. The scenarios share one services start and one
pipeline run (module fixtures) and run in file order: security, load, the pipeline and its lineage, a
second clone checking out the champion's inputs, two clones registering at once, then the faults (object
store down, PostgreSQL restarted, MLflow server killed mid-run).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flows.test_pipeline_end_to_end import _git, _make_repo


def _loopback_only() -> bool:
    return {name for _, name in socket.if_nameindex()} == {"lo"}


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _loopback_only(), reason="runs inside the loopback-only namespace of test_services.py"
    ),
]

REPO = Path(__file__).resolve().parents[2]
MODEL = "stvg-r1"  # the shrunken params of the end-to-end test keep the default model name
EXPERIMENT = "stvg-e2e"
PIPELINE_TIMEOUT_S = 7200  # the whole pipeline takes minutes on 2 idle cores; far longer on busy ones
SERVICES = ("postgres", "s3", "mlflow", "prefect")


@dataclass
class Team:
    """The running services as a test sees them."""

    base: Path  # holds origin/, the clones and the services folder
    folder: Path  # .services
    env_file: Path
    env: dict[str, str]  # the clients' settings (read from env_file)
    secrets: dict[str, str]

    @property
    def mlflow_url(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def prefect_api(self) -> str:
        return self.env["PREFECT_API_URL"]

    def process_env(self, root: Path) -> dict[str, str]:
        """Environment of a command run in checkout ``root`` against the services (as a user runs it)."""
        path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
        return os.environ | {
            "PYTHONPATH": path,
            "STVG_ROOT": str(root),
            "STVG_SERVICES_ENV": str(self.env_file),
        }

    def service(self, name: str) -> Any:
        from flows.services.layout import load_layout
        from flows.services.manager import services

        return next(s for s in services(load_layout(self.folder)) if s.name == name)


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _stvg(team: Team, root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "flows.cli", *args], root, team.process_env(root), timeout)


def _services(team: Team, action: str, root: Path) -> dict[str, dict[str, Any]]:
    done = _stvg(team, root, "services", action, "--dir", str(team.folder), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return {s["name"]: s for s in json.loads(done.stdout)["services"]}


def _pipeline(team: Team, clone: Path, *stages: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "flows.pipeline", *(["--stages", *stages] if stages else [])]
    return _run(cmd, clone, team.process_env(clone), PIPELINE_TIMEOUT_S)


@pytest.fixture(scope="module")
def team(request: pytest.FixtureRequest) -> Iterator[Team]:
    """`stvg services up` in a fresh folder (reachable by the `postgres` user), `down` at the end.

    The folder (logs, data, clones) is removed afterwards unless a scenario failed.
    """
    base = Path(tempfile.mkdtemp(prefix="stvg-team-"))
    base.chmod(0o711)
    origin = _make_repo(base / "origin")
    for name in (".dvc/config", ".dvc/.gitignore"):
        (origin / name).parent.mkdir(exist_ok=True)
        (origin / name).write_bytes((REPO / name).read_bytes())
    _git(origin, "add", "-A")
    _git(origin, "commit", "-qm", "dvc")
    folder = base / ".services"
    shell = Team(base, folder, folder / "env", {}, {})
    try:
        started = _services(shell, "up", origin)
        assert {n: s["action"] for n, s in started.items()} == dict.fromkeys(SERVICES, "started")
        from stvg.env import read_env_file

        team = Team(base, folder, folder / "env", read_env_file(folder / "env"),
                    json.loads((folder / "secrets.json").read_text()))  # fmt: skip
        with pytest.MonkeyPatch.context() as env:  # this process's clients log in as the flows do
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                env.setenv(key, team.env[key])
            yield team
    finally:
        _stvg(shell, origin, "services", "down", "--dir", str(folder))
        if not request.session.testsfailed:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"services folder kept for inspection: {base}")


def _client(team: Team):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=team.mlflow_url)


def _http(url: str, *, auth: str = "", data: bytes | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(
        url, data=data, headers=headers, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _s3(team: Team):
    import boto3

    return boto3.client(
        "s3", endpoint_url=team.env["STVG_DVC_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id=team.secrets["s3_access_key"], aws_secret_access_key=team.secrets["s3_secret_key"],
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- security


def _listening_sockets() -> dict[int, str]:
    """inode -> local address of every listening TCP socket in this namespace (IPv4 and IPv6)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[int(fields[9])] = fields[1].split(":")[0]
    return found


def _socket_owners(inodes: set[int]) -> dict[int, set[int]]:
    """inode -> {pid, process group} of the process holding it."""
    owners: dict[int, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            pgid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                owners.setdefault(int(link[8:-1]), set()).update({int(proc.name), pgid})
    return owners


def test_services_listen_on_loopback_only_and_refuse_anonymous_clients(team: Team) -> None:
    status = _services(team, "status", team.base / "origin")
    assert all(s["healthy"] for s in status.values()), status
    sockets = _listening_sockets()
    assert sockets and set(sockets.values()) == {"0100007F"}, sockets  # 127.0.0.1, nothing else, no IPv6
    owners = set().union(*_socket_owners(set(sockets)).values())
    for name in SERVICES:  # each listens itself, or through workers in the process group it leads
        assert status[name]["pid"] in owners, (name, status[name], owners)

    search = f"{team.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _http(search)[0] == 401
    assert _http(search, auth=f"admin:{team.secrets['mlflow_admin']}")[0] == 200
    flows = f"{team.prefect_api}/flows/filter"
    assert _http(flows, data=b"{}")[0] == 401
    assert _http(flows, auth=team.env["PREFECT_API_AUTH_STRING"], data=b"{}")[0] == 200
    assert _http(f"{team.env['STVG_DVC_ENDPOINT_URL']}/dvc")[0] == 403  # anonymous S3
    assert {b["Name"] for b in _s3(team).list_buckets()["Buckets"]} == {"mlflow", "dvc"}
    from flows.services.postgres import pg_bin

    port = str(team.service("postgres").layout.ports.postgres)
    anonymous = _run([pg_bin("psql"), "-w", "-h", "127.0.0.1", "-p", port, "-U", "mlflow", "-d", "mlflow", "-c", "select 1"],
                     team.base, os.environ | {"PGPASSFILE": "/dev/null"})  # fmt: skip
    assert anonymous.returncode != 0 and "password" in anonymous.stderr

    for private in ("env", "secrets.json", "pgpass", "mlflow/basic_auth.ini", "s3/s3.json"):
        assert stat.S_IMODE((team.folder / private).stat().st_mode) == 0o600, private
    again = _services(team, "up", team.base / "origin")  # idempotent: nothing restarted
    assert {n: (s["action"], s["pid"]) for n, s in again.items()} == {
        n: ("running", s["pid"]) for n, s in status.items()
    }


# ----------------------------------------------------------------------------------------------- load

LOAD_WORKERS, LOAD_CALLS, PARAM_EVERY = 8, 2000, 20
LOAD_WORKER = """
import sys
from mlflow import MlflowClient
url, experiment, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls, every = int(sys.argv[4]), int(sys.argv[5])
client = MlflowClient(tracking_uri=url)
run = client.create_run(experiment, run_name=f"load-{worker}").info.run_id
for i in range(calls):
    if i % every == every - 1:
        client.log_param(run, f"p{i // every}", worker * 1000 + i // every)
    else:
        client.log_metric(run, "value", float(worker * 10000 + i), step=i)
client.set_terminated(run)
print(run)
"""


def test_eight_processes_log_at_once_and_every_value_arrives(team: Team) -> None:
    client = _client(team)
    experiment = client.create_experiment("load")
    argv = [team.mlflow_url, experiment]
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_WORKER, *argv, str(w), str(LOAD_CALLS), str(PARAM_EVERY)],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(LOAD_WORKERS)
    ]
    runs = {w: p.communicate(timeout=1800)[0].split()[-1] for w, p in enumerate(workers)}  # the run id, last
    seconds = time.monotonic() - started
    assert all(p.returncode == 0 for p in workers)
    print(
        f"load: {LOAD_WORKERS} x {LOAD_CALLS} calls in {seconds:.1f} s ({LOAD_WORKERS * LOAD_CALLS / seconds:.0f}/s)"
    )
    for worker, run_id in runs.items():
        steps = [i for i in range(LOAD_CALLS) if i % PARAM_EVERY != PARAM_EVERY - 1]
        history = client.get_metric_history(run_id, "value")
        assert len(history) == len(steps) == 1900
        assert sum(m.value for m in history) == sum(worker * 10000 + i for i in steps)
        params = client.get_run(run_id).data.params
        assert len(params) == LOAD_CALLS // PARAM_EVERY
        assert sum(int(v) for v in params.values()) == sum(worker * 1000 + k for k in range(len(params)))


# ----------------------------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def clone_a(team: Team) -> dict[str, Any]:
    """Clone A after one whole pipeline run against the services."""
    clone = team.base / "A"
    _git(team.base, "clone", "-q", str(team.base / "origin"), str(clone))
    done = _pipeline(team, clone)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    return {"clone": clone, "stdout": done.stdout, "run_id": _run_id(done.stdout)}


def _run_id(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.strip().startswith("MLflow run:"))
    return line.split()[2]


def _children(client: Any, run: Any) -> dict[str, Any]:
    found = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    return {c.info.run_name: c for c in found}


def _bucket_keys(team: Team, bucket: str) -> list[str]:
    keys = []
    for page in _s3(team).get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _dvc(clone: Path, team: Team, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "dvc", *args], clone, team.process_env(clone))


def test_pipeline_runs_registers_and_pushes_against_the_services(team: Team, clone_a: dict[str, Any]) -> None:
    client, clone = _client(team), clone_a["clone"]
    run = client.get_run(clone_a["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["dvc.pushed"] == "true"
    assert run.data.tags["dvc.remote"] == "s3://dvc"
    assert "DVC remote:        pushed to s3://dvc" in clone_a["stdout"]
    children = _children(client, run)
    assert {n: c.info.status for n, c in children.items()} == dict.fromkeys(
        ["download", "base_model", "detector", "prompt", "label", "train", "evaluate"], "FINISHED"
    )
    assert "evaluate/m_vIoU" in children["evaluate"].data.metrics
    assert "label/ceiling_m_vIoU" in children["label"].data.metrics

    (found,) = client.search_model_versions(f"name = '{MODEL}'")
    version = client.get_model_version(MODEL, found.version)  # searches do not return aliases
    assert set(version.aliases) == {"champion", "challenger"} and version.run_id == run.info.run_id
    assert version.tags["dvc_pushed"] == "true"
    assert version.source.startswith("mlflow-artifacts:")  # stored through the server, in the bucket

    keys = _bucket_keys(team, "mlflow")
    assert any(k.endswith("previews/sampled_frames.png") for k in keys)
    assert any("/evaluate/plots/" in k and k.endswith(".png") for k in keys)
    assert any(k.endswith("/MLmodel") for k in keys) and any(k.endswith("model.safetensors") for k in keys)
    assert _bucket_keys(team, "dvc")
    cloud = _dvc(clone, team, "status", "--cloud", "--json")
    assert cloud.returncode == 0 and json.loads(cloud.stdout or "{}") == {}, cloud.stdout  # all on the remote

    status, flow_runs = _http(f"{team.prefect_api}/flow_runs/filter", auth=team.env["PREFECT_API_AUTH_STRING"],
                              data=b"{}")  # fmt: skip
    assert status == 200 and {r["state_type"] for r in flow_runs} == {"COMPLETED"} and len(flow_runs) >= 2

    lineage = _stvg(team, clone, "lineage", f"models:/{MODEL}@champion", "--json")
    info = json.loads(lineage.stdout)
    from flows import dvc

    assert info["raw_data_version"] == dvc.dvc_file_hash(clone / "data.dvc")
    assert info["tracking_uri"] == team.mlflow_url
    assert {"dvc.lock", "data.dvc", "params.yaml"} <= set(info["lineage_files"])


def test_no_secret_in_git_or_in_anything_logged(team: Team, clone_a: dict[str, Any]) -> None:
    secrets = set(team.secrets.values())
    for repo in (team.base / "origin", clone_a["clone"]):
        listed = _git(repo, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
        for name in listed:
            path = repo / name
            if path.is_file():
                text = path.read_text(errors="replace")
                assert not [s for s in secrets if s in text], f"a secret in {path}, which git would take"
    clone = clone_a["clone"]
    assert _run(["git", "check-ignore", "-q", ".dvc/config.local"], clone, dict(os.environ)).returncode == 0
    assert team.secrets["s3_secret_key"] in (clone / ".dvc" / "config.local").read_text()

    client = _client(team)
    logged = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            logged += list(run.data.params.values()) + list(run.data.tags.values())
    for version in client.search_model_versions(f"name = '{MODEL}'"):
        logged += list(version.tags.values()) + [version.description or ""]
    assert logged and not [s for s in secrets for value in logged if s in value]


@pytest.fixture(scope="module")
def clone_b(team: Team, clone_a: dict[str, Any]) -> Path:
    """A fresh clone given the champion's inputs by `stvg lineage … --checkout` (nothing local before)."""
    clone = team.base / "B"
    _git(team.base, "clone", "-q", str(team.base / "origin"), str(clone))
    done = _stvg(team, clone, "lineage", f"models:/{MODEL}@champion", "--checkout", str(clone), "--json")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert json.loads(done.stdout)["checkout"]["clean"] is True
    return clone


def test_second_clone_reproduces_the_champions_inputs_from_the_remote(
    team: Team, clone_a: dict[str, Any], clone_b: Path
) -> None:
    status = _dvc(clone_b, team, "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout or "{}") == {}, status.stdout
    same = ["dvc.lock", "data.dvc", "params.yaml", "artifacts/evaluate/metrics.json",
            "artifacts/train/model/model.safetensors", "artifacts/detector/weights.pt"]  # fmt: skip
    for name in same:
        assert (clone_b / name).read_bytes() == (clone_a["clone"] / name).read_bytes(), name
    data = [p.relative_to(clone_b) for p in (clone_b / "data").rglob("*") if p.is_file()]
    assert data and all((clone_a["clone"] / p).is_file() for p in data)


def _set_seed(clone: Path, seed: int) -> None:
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["train"]["seed"] = seed
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_two_clones_register_at_once_and_each_version_is_decided_once(
    team: Team, clone_a: dict[str, Any], clone_b: Path
) -> None:
    clones = [clone_a["clone"], clone_b]
    for seed, clone in enumerate(clones, start=11):
        _set_seed(clone, seed)  # a different policy in each clone: both must be registered
    procs = [
        subprocess.Popen([sys.executable, "-m", "flows.pipeline", "--stages", "train", "evaluate"], cwd=clone,
                         env=team.process_env(clone), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for clone in clones
    ]  # fmt: skip
    outputs = [p.communicate(timeout=PIPELINE_TIMEOUT_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    client = _client(team)
    runs = {_run_id(out) for out in outputs}
    new = sorted((v for v in client.search_model_versions(f"name = '{MODEL}'") if v.run_id in runs),
                 key=lambda v: int(v.version))  # fmt: skip
    assert len(new) == 2 and {v.run_id for v in new} == runs
    champion = "1"  # the first run's version
    for (
        version
    ) in new:  # registration and decision one at a time: each compared with the champion of its time
        assert version.description.count("## Promotion") == 1
        assert version.tags["promotion.champion_version"] == champion
        if version.tags["promotion.decision"] == "promoted":
            champion = str(version.version)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == champion
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == str(new[-1].version)


# ----------------------------------------------------------------------------------------------- faults


def test_object_store_down_fails_the_push_clearly_and_the_run_is_not_reported_pushed(
    team: Team, clone_b: Path
) -> None:
    assert team.service("s3").stop()
    done = _pipeline(team, clone_b, "evaluate")  # nothing to reproduce: the run only pushes
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    endpoint = team.env["STVG_DVC_ENDPOINT_URL"]
    assert f"NOT pushed to s3://dvc: the object store at {endpoint} is not reachable" in done.stdout
    tags = _client(team).get_run(_run_id(done.stdout)).data.tags
    assert tags["dvc.pushed"] == "false" and "not reachable" in tags["dvc.push"]
    # MLflow's artifact store is a bucket of that store: the supporting artifacts are skipped and listed
    assert tags["artifacts.incomplete"] == "true" and "inputs/params.yaml" in tags["artifacts.missing"]
    assert "MLflow artifacts:" in done.stdout and "NOT uploaded" in done.stdout

    restarted = _services(team, "up", clone_b)
    assert restarted["s3"]["action"] == "started" and restarted["mlflow"]["action"] == "running"
    pushed = _dvc(clone_b, team, "push", "--run-cache")
    assert pushed.returncode == 0, pushed.stderr
    cloud = _dvc(clone_b, team, "status", "--cloud", "--json")
    assert json.loads(cloud.stdout or "{}") == {}


def test_postgres_restart_loses_no_committed_run(team: Team) -> None:
    client = _client(team)
    experiment = client.get_experiment_by_name("load").experiment_id
    before = {
        r.info.run_id: len(client.get_metric_history(r.info.run_id, "value"))
        for r in client.search_runs([experiment])
    }
    postgres = team.service("postgres")
    assert postgres.stop() and not postgres.healthy()
    postgres.start()
    after = {
        r.info.run_id: len(client.get_metric_history(r.info.run_id, "value"))
        for r in client.search_runs([experiment])
    }
    assert after == before and len(before) == LOAD_WORKERS
    run = client.create_run(experiment).info.run_id  # the servers write again
    client.log_metric(run, "after_restart", 1.0)
    assert client.get_run(run).data.metrics == {"after_restart": 1.0}
    assert (
        _http(f"{team.prefect_api}/flows/filter", auth=team.env["PREFECT_API_AUTH_STRING"], data=b"{}")[0]
        == 200
    )


def test_mlflow_server_killed_mid_run_fails_the_flow_and_the_run_is_closed_when_it_is_back(
    team: Team, clone_a: dict[str, Any]
) -> None:
    client, clone = _client(team), clone_a["clone"]
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    known = {r.info.run_id for r in client.search_runs([experiment])}
    flow = subprocess.Popen([sys.executable, "-m", "flows.pipeline", "--stages", "label"], cwd=clone,
                            env=team.process_env(clone), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not (
        new := [r for r in client.search_runs([experiment]) if r.info.run_id not in known and r.data.params]
    ):
        assert flow.poll() is None and time.monotonic() < deadline, "the flow never logged its run's params"
        time.sleep(0.2)
    os.killpg(team.service("mlflow").pid(), signal.SIGKILL)  # the run is under way: the server dies
    output = flow.communicate(timeout=900)[0]
    assert flow.returncode != 0
    assert f"the MLflow tracking server {team.mlflow_url} is unreachable" in output, output[-3000:]
    parent = new[0].data.tags.get("mlflow.parentRunId") or new[0].info.run_id
    journal = json.loads((clone / "mlflow" / "unclosed_runs.json").read_text())
    assert parent in {e["run_id"] for e in journal}

    assert _services(team, "up", clone)["mlflow"]["action"] == "started"
    assert client.get_run(parent).info.status == "RUNNING"  # nobody could close it yet
    again = _pipeline(team, clone, "label")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    closed = client.get_run(parent)
    assert closed.info.status == "FAILED" and closed.data.tags["stvg.failure"].startswith(
        "the tracking server"
    )
    assert not (clone / "mlflow" / "unclosed_runs.json").exists()
    assert not client.search_model_versions(f"run_id = '{parent}'")
