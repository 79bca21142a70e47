"""The retraining trigger and the Prefect deployments: real MLflow store, real Prefect in the slow test.

The download and pipeline flows are stood in for by fakes that write what the real ones write
(``data.dvc``; a registered challenger), so the trigger logic runs against a real registry in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from flows import retrain
from flows.registry import CHAMPION, read_lineage, register_model, version_by_alias
from stvg.config import load_params

REPO_ROOT = Path(__file__).resolve().parents[2]
METRICS = {"m_vIoU": 0.30, "m_tIoU": 0.50}


def _write_data_dvc(root: Path, raw_md5: str) -> None:
    (root / "data.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": raw_md5, "hash": "md5", "path": "data"}]})
    )


def _write_pins(root: Path, raw_md5: str) -> None:
    _write_data_dvc(root, raw_md5)
    lock = {
        "schema": "2.0",
        "stages": {
            stage: {
                "cmd": f"stvg {stage}",
                "outs": [{"path": f"artifacts/{stage}", "hash": "md5", "md5": md5}],
            }
            for stage, md5 in (("prompt", "p" * 32 + ".dir"), ("label", "l" * 32 + ".dir"))
        },
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


class FakeDownload:
    """Stands in for the download flow: "fetches" whatever ``upstream`` holds now and pins it in data.dvc."""

    def __init__(self, root: Path, upstream: str) -> None:
        self.root, self.upstream = root, upstream
        self.calls: list[str] = []

    def __call__(self, params_path: str) -> str:
        self.calls.append(params_path)
        _write_data_dvc(self.root, self.upstream)
        return self.upstream


class FakePipeline:
    """Stands in for the pipeline flow: registers one challenger per call with the next metrics."""

    def __init__(self, root: Path, client: MlflowClient, experiment_id: str, metrics: list[dict[str, float]]):
        self.root, self.client, self.experiment_id, self.metrics = root, client, experiment_id, metrics
        self.calls: list[str] = []
        policy = root / "policy"
        policy.mkdir(exist_ok=True)
        (policy / "config.json").write_text("{}")
        (root / "detector.pt").write_bytes(b"detector weights")

    def __call__(self, params_path: str) -> Any:
        self.calls.append(params_path)
        params = load_params(self.root / params_path)
        run_id = self.client.create_run(self.experiment_id).info.run_id
        register_model(
            self.client,
            run_id,
            self.root / "policy",
            params,
            read_lineage(self.root),
            self.metrics.pop(0),
            detector_weights=self.root / "detector.pt",
        )
        self.client.set_terminated(run_id)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, str]:
    """One sqlite store per module (its migrations take seconds); each test has its own model name."""
    folder = tmp_path_factory.mktemp("mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    return client, client.create_experiment("retrain", artifact_location=(folder / "artifacts").as_uri())


@pytest.fixture
def workspace(tmp_path: Path, store, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A git workspace with params.yaml, data.dvc and dvc.lock, pointed at the module's MLflow store.

    The download is a ``FakeDownload`` whose upstream holds the pinned version until a test changes it.
    """
    client, experiment_id = store
    root = tmp_path / "ws"
    root.mkdir()
    name = "retrain-" + request.node.name[:40].replace("_", "-")
    (root / "params.yaml").write_text(yaml.safe_dump({"registry": {"model_name": name, "tolerance": 0.02}}))
    _write_pins(root, "a" * 32 + ".dir")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    monkeypatch.setenv("STVG_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    download = FakeDownload(root, "a" * 32 + ".dir")
    monkeypatch.setattr(retrain, "run_download", download)
    return root, client, experiment_id, name, download


def test_retrain_runs_only_when_the_raw_data_version_changes(workspace, monkeypatch) -> None:
    root, client, experiment_id, name, download = workspace
    pipeline = FakePipeline(
        root,
        client,
        experiment_id,
        [METRICS, METRICS | {"m_vIoU": 0.20}, METRICS | {"m_vIoU": 0.40}],
    )
    monkeypatch.setattr(retrain, "run_pipeline", pipeline)

    first = retrain.retrain_flow.fn("params.yaml")  # no champion yet: train and promote
    assert first["action"] == "retrained" and first["reason"] == "no champion yet"
    assert first["decision"] == "promoted" and first["champion_version"] == "1"
    champion = version_by_alias(client, name, CHAMPION)
    assert champion.tags["raw_data_version"] == "a" * 32 + ".dir"

    again = retrain.retrain_flow.fn("params.yaml")  # same data.dvc: nothing runs
    assert again["action"] == "up-to-date" and len(pipeline.calls) == 1

    download.upstream = "b" * 32 + ".dir"  # new upstream data, noticed by the trigger's own download
    worse = retrain.retrain_flow.fn("params.yaml")  # ... but the new model is worse: not promoted
    assert worse["action"] == "retrained" and worse["reason"] == f"raw data {'a' * 32}.dir -> {'b' * 32}.dir"
    assert worse["decision"] == "rejected" and worse["champion_version"] == "1"
    # The champion still records the old data, so the trigger fires again until a model passes the gate.
    better = retrain.retrain_flow.fn("params.yaml")
    assert better["decision"] == "promoted" and better["champion_version"] == "3"
    assert retrain.retrain_flow.fn("params.yaml")["action"] == "up-to-date"
    assert len(pipeline.calls) == 3
    assert len(download.calls) == 5  # the download runs on every trigger, the pipeline only on new data
    assert version_by_alias(client, name, CHAMPION).tags["raw_data_version"] == "b" * 32 + ".dir"


def test_params_path_is_resolved_once_against_the_root(workspace, monkeypatch, tmp_path: Path) -> None:
    root, client, experiment_id, _, download = workspace
    pipeline = FakePipeline(root, client, experiment_id, [METRICS])
    monkeypatch.setattr(retrain, "run_pipeline", pipeline)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a worker's working directory is not the project root
    assert retrain.retrain_flow.fn("params.yaml")["action"] == "retrained"
    assert download.calls == pipeline.calls == [str(root / "params.yaml")]


def test_retrain_force_and_decision_already_made_by_the_pipeline(workspace, monkeypatch) -> None:
    root, client, experiment_id, name, download = workspace
    pipeline = FakePipeline(root, client, experiment_id, [METRICS, METRICS | {"m_vIoU": 0.5}])
    monkeypatch.setattr(retrain, "run_pipeline", pipeline)
    retrain.retrain_flow.fn("params.yaml")

    def pipeline_that_promotes(params_path: str) -> None:
        pipeline(params_path)
        latest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        client.set_model_version_tag(name, str(latest.version), "promotion.decision", "rejected")

    monkeypatch.setattr(retrain, "run_pipeline", pipeline_that_promotes)
    forced = retrain.retrain_flow.fn("params.yaml", force=True)
    assert forced["reason"] == "forced" and forced["decision"] == "rejected"
    assert forced["champion_version"] == "1"  # the pipeline's own decision is not second-guessed
    assert len(download.calls) == 2


def test_first_trigger_without_data_pins_downloads_then_trains(workspace, monkeypatch) -> None:
    root, client, experiment_id, name, download = workspace
    (root / "data.dvc").unlink()
    download.upstream = "c" * 32 + ".dir"  # the download writes data.dvc before anything compares
    monkeypatch.setattr(retrain, "run_pipeline", FakePipeline(root, client, experiment_id, [METRICS]))
    result = retrain.retrain_flow.fn("params.yaml")
    assert result["raw_data_version"] == "c" * 32 + ".dir" and result["decision"] == "promoted"
    assert version_by_alias(client, name, CHAMPION).tags["raw_data_version"] == "c" * 32 + ".dir"


def test_a_failed_download_stops_the_trigger_before_the_pipeline(workspace, monkeypatch) -> None:
    root, client, experiment_id, _, _ = workspace
    pipeline = FakePipeline(root, client, experiment_id, [METRICS])
    monkeypatch.setattr(retrain, "run_pipeline", pipeline)

    def unreachable_source(params_path: str) -> str:
        raise RuntimeError("download failed for 1 source(s): hcstvg_v2: HTTP 503")

    monkeypatch.setattr(retrain, "run_download", unreachable_source)
    with pytest.raises(RuntimeError, match="download failed"):
        retrain.retrain_flow.fn("params.yaml")
    assert pipeline.calls == []


def test_serve_deployment_has_the_cron_schedule_and_params() -> None:
    deployments = retrain.build_deployments("15 4 * * *", "Europe/Paris", "params.paper.yaml")
    weekly = deployments[0]
    assert (weekly.flow_name, weekly.name) == ("retrain", "weekly")
    assert weekly.entrypoint == "flows/retrain.py:retrain_flow"
    (schedule,) = weekly.schedules
    assert schedule.schedule.cron == "15 4 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert weekly.parameters == {"params_path": "params.paper.yaml"}
    if (REPO_ROOT / "flows" / "pipeline.py").is_file():
        assert [(d.flow_name, d.name, d.schedules) for d in deployments[1:]] == [
            ("pipeline", "on-demand", [])
        ]


def test_prefect_yaml_entrypoints_load_and_the_schedule_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    # Prefect puts the entrypoint's folder (flows/) on sys.path; restore it after the test, or a later
    # `import dvc` in this process finds flows/dvc.py instead of the dvc package
    monkeypatch.setattr(sys, "path", list(sys.path))

    spec = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    weekly = by_name["weekly"]
    assert load_flow_from_entrypoint(str(REPO_ROOT / weekly["entrypoint"])).name == "retrain"
    (schedule,) = weekly["schedules"]
    assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).cron == retrain.DEFAULT_CRON
    assert set(weekly["parameters"]) <= set(retrain.retrain_flow.parameters.properties)
    if (REPO_ROOT / "flows" / "pipeline.py").is_file():
        assert (
            load_flow_from_entrypoint(str(REPO_ROOT / by_name["on-demand"]["entrypoint"])).name == "pipeline"
        )


@pytest.mark.slow
def test_real_prefect_runs_the_flow_and_registers_both_deployment_styles(
    workspace, monkeypatch, tmp_path: Path
) -> None:
    """The flow under a real (temporary) Prefect server; `serve`'s deployments and `prefect deploy`."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    root, client, experiment_id, _, _ = workspace
    monkeypatch.setattr(retrain, "run_pipeline", FakePipeline(root, client, experiment_id, [METRICS]))
    with prefect_test_harness(server_startup_timeout=120):
        assert retrain.retrain_flow("params.yaml")["action"] == "retrained"
        assert retrain.retrain_flow("params.yaml")["action"] == "up-to-date"

        for deployment in retrain.build_deployments():
            deployment.apply()
        api_url = PREFECT_API_URL.value()
        env = os.environ | {"PREFECT_API_URL": api_url, "STVG_ROOT": str(REPO_ROOT)}
        prefect_cli = [sys.executable, "-m", "prefect"]
        subprocess.run(
            [*prefect_cli, "work-pool", "create", "stvg-local", "--type", "process"],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        names = ["weekly"] + (["on-demand"] if (REPO_ROOT / "flows/pipeline.py").is_file() else [])
        deploy = subprocess.run(
            [*prefect_cli, "--no-prompt", "deploy", *[a for n in names for a in ("--name", n)]],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]

        async def read_weekly() -> Any:
            async with get_client() as api:
                return await api.read_deployment_by_name("retrain/weekly")

        import asyncio

        weekly = asyncio.run(read_weekly())
        assert weekly.work_pool_name == "stvg-local"  # the prefect.yaml version replaced the served one
        assert [s.schedule.cron for s in weekly.schedules] == [retrain.DEFAULT_CRON]
        # {{ $STVG_ROOT }} is filled in at deploy time: runs start in this checkout.
        step = weekly.pull_steps[0]["prefect.deployments.steps.set_working_directory"]
        assert step["directory"] == str(REPO_ROOT)
