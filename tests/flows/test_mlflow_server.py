"""The registry path against a real `mlflow server` on 127.0.0.1 (MLFLOW_TRACKING_URI = http://...).

The server is the `mlflow_server` fixture of tests/flows/conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows import lineage as lineage_cli
from flows import promote as promote_cli
from flows.registry import CHAMPION, register_model
from flows.serving import fetch_model
from stvg.config import Params, RegistryParams

pytestmark = pytest.mark.slow

LINEAGE = {
    "raw_data_version": "9" * 32 + ".dir",
    "prompted_data_version": "8" * 32 + ".dir",
    "label_data_version": "7" * 32 + ".dir",
    "git_commit": "6" * 40,
}


def test_register_promote_lineage_and_load_through_the_server(
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    global_mlflow_uri,
) -> None:
    server = mlflow_server
    client = MlflowClient(tracking_uri=server)
    experiment_id = client.create_experiment("stvg-server")  # server-side artifact root (mlflow-artifacts:)
    params = Params(registry=RegistryParams(model_name="stvg-r1-server"))
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    detector = tmp_path / "detector.pt"
    detector.write_bytes(b"detector weights")
    dvc_lock = tmp_path / "dvc.lock"
    dvc_lock.write_text("schema: '2.0'\n")

    versions = []
    for metrics in ({"m_vIoU": 0.3, "m_tIoU": 0.5}, {"m_vIoU": 0.2, "m_tIoU": 0.5}):
        run_id = client.create_run(experiment_id).info.run_id
        versions.append(
            register_model(
                client,
                run_id,
                policy,
                params,
                LINEAGE,
                metrics,
                detector_weights=detector,
                lineage_files={"dvc.lock": dvc_lock},
            )
        )
        client.set_terminated(run_id)
        # The CLIs, as a user runs them: MLFLOW_TRACKING_URI names the server.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
        monkeypatch.setenv("STVG_ROOT", str(tmp_path))
        params_file = tmp_path / "params.yaml"
        params_file.write_text(f"registry:\n  model_name: {params.registry.model_name}\n")
        assert promote_cli.main(["--params", str(params_file), "--json"]) == 0
        capsys.readouterr()

    champion = client.get_model_version_by_alias(params.registry.model_name, CHAMPION)
    assert str(champion.version) == str(versions[0].version)  # the worse second model was not promoted
    rejected = client.get_model_version(params.registry.model_name, str(versions[1].version))
    assert rejected.tags["promotion.decision"] == "rejected"

    assert lineage_cli.main([f"models:/{params.registry.model_name}@champion", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in LINEAGE} == LINEAGE
    assert info["lineage_files"] == ["dvc.lock"] and info["tracking_uri"] == server

    # `stvg ground --model models:/...@champion` fetches the bundle through the server's artifact proxy.
    local = fetch_model(f"models:/{params.registry.model_name}@champion", tmp_path / "cache", client)
    assert local.version == str(versions[0].version)
    assert (local.bundle_dir / "policy" / "config.json").read_text() == '{"model_type": "qwen2_5_vl"}'
    assert (local.bundle_dir / "prompting" / "detector.pt").read_bytes() == detector.read_bytes()
