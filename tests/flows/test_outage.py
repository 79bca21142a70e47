"""A tracking outage's aftermath and one promotion decision per version, on a REAL MLflow sqlite store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows import outage
from flows.promote import promote
from flows.registry import CHAMPION, register_model
from stvg.config import Params, RegistryParams

LINEAGE = {
    "raw_data_version": "1" * 32 + ".dir",
    "prompted_data_version": "2" * 32 + ".dir",
    "label_data_version": "3" * 32 + ".dir",
    "git_commit": "4" * 40,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, str]:
    root = tmp_path_factory.mktemp("mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return client, client.create_experiment("outage", artifact_location=(root / "artifacts").as_uri())


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (tmp_path / "detector.pt").write_bytes(b"detector weights")  # registration copies it, never loads it
    return folder


def _params(name: str) -> Params:
    return Params(
        registry=RegistryParams(model_name=name, primary_metric="m_vIoU", margin=0.0, tolerance=0.02)
    )


def _decide(client: MlflowClient, name: str):
    return promote(client, name, "m_vIoU", 0.0, 0.02)


def test_the_gate_decides_each_version_once(store, policy_dir: Path) -> None:
    client, experiment = store
    name = "stvg-once"
    first = register_model(
        client,
        client.create_run(experiment).info.run_id,
        policy_dir,
        _params(name),
        LINEAGE,
        {"m_vIoU": 0.3},
        detector_weights=policy_dir.parent / "detector.pt",
    )
    assert _decide(client, name).promote
    worse = register_model(
        client,
        client.create_run(experiment).info.run_id,
        policy_dir,
        _params(name),
        LINEAGE,
        {"m_vIoU": 0.1},
        detector_weights=policy_dir.parent / "detector.pt",
    )
    assert not _decide(client, name).promote
    description = client.get_model_version(name, worse.version).description
    again = _decide(client, name)  # e.g. `stvg promote` after the pipeline already decided
    assert not again.promote and "already decided (rejected vs champion version 1)" in again.reason
    assert client.get_model_version(name, worse.version).description == description  # nothing re-recorded
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == str(first.version)


def test_runs_left_open_by_an_outage_are_closed_and_half_registrations_undone(
    store, policy_dir: Path, tmp_path: Path
) -> None:
    client, experiment = store
    name = "stvg-outage"
    parent = client.create_run(experiment).info.run_id
    stage = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    half = register_model(
        client,
        parent,
        policy_dir,
        _params(name),
        LINEAGE,
        {"m_vIoU": 0.3},
        detector_weights=policy_dir.parent / "detector.pt",
    )  # no decision yet
    pending = client.create_logged_model(experiment_id=experiment, name="policy", source_run_id=parent)
    decided_run = client.create_run(experiment).info.run_id
    decided = register_model(
        client,
        decided_run,
        policy_dir,
        _params(name),
        LINEAGE,
        {"m_vIoU": 0.3},
        detector_weights=policy_dir.parent / "detector.pt",
    )
    _decide(client, name)

    outage.remember_unclosed(tmp_path, "http://127.0.0.1:1", [decided_run], "train")  # another server's
    outage.remember_unclosed(tmp_path, client.tracking_uri, [stage, parent], "train")
    assert outage.close_unclosed(client, tmp_path) == [stage, parent]

    for run_id in (parent, stage):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags["stvg.failed_stage"] == "train"
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == [
        str(decided.version)
    ]
    assert str(half.version) != str(decided.version)
    assert str(client.get_logged_model(pending.model_id).status).endswith("FAILED")
    assert client.get_run(decided_run).info.status == "RUNNING"  # another server's entry: untouched
    left = json.loads((tmp_path / outage.JOURNAL).read_text())
    assert [e["run_id"] for e in left] == [decided_run]
    assert outage.close_unclosed(client, tmp_path) == []  # done once


def test_server_reachable_tells_a_dead_server_from_a_local_store() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not outage.server_reachable(f"http://127.0.0.1:{port}")
    assert outage.server_reachable("sqlite:///somewhere/mlflow.db")
