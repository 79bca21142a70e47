"""The download and pipeline flows for real: Prefect (test harness), DVC and MLflow in a temp git repo.

The raw data is an HC-STVG v2 release (annotations + video files) served as a .tar.gz from a real
HTTP server on 127.0.0.1, so the whole path download -> extract -> GX gate -> dvc add -> MLflow runs;
one test sends it all to a real `mlflow server` instead of the local sqlite store.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.unit.test_fetch import server  # noqa: F401 - the 127.0.0.1 Range server fixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect API (its first start takes ~20 s) with PREFECT_HOME in a temp folder."""
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = str(tmp_path_factory.mktemp("prefect_home"))
    with temporary_settings({PREFECT_HOME: home}), prefect_test_harness(server_startup_timeout=180):
        yield


def _entry(query: str, st: float = 2.0, ed: float = 5.0) -> dict:
    # HC-STVG v2 release entry: 200 frames over 20 s (10 fps), tube from 1-based frame 21, 30 boxes (xywh)
    return {
        "bbox": [[10, 20, 50, 60]] * 30,
        "st_time": st,
        "ed_time": ed,
        "img_num": 200,
        "st_frame": 21,
        "English": query,
        "img_size": [240, 320],
    }


def _release(late_end: bool = False, malformed: bool = False) -> bytes:
    """An HC-STVG v2 release archive; ``late_end`` puts one GT end past the video's 20 s, ``malformed``
    adds a train sample whose ``st_frame`` is not a number (the loader rejects it)."""
    train = {
        "clip_a.mp4": _entry("the man in the grey suit sits down"),
        "clip_b.mp4": _entry("a woman opens the door"),
    }
    if malformed:
        train["broken_clip.mp4"] = _entry("a man waves") | {"st_frame": "twenty-one"}
    val = {
        "clip_c.mp4": _entry("the child who waves"),
        "late_clip.mp4": _entry("a dog runs", ed=25.0 if late_end else 6.0),
    }
    members = {
        "anno_v2/train_v2.json": json.dumps(train).encode(),
        "anno_v2/val_v2.json": json.dumps(val).encode(),
        **{f"video_parts/0/{name}": b"\0" * 16 for name in [*train, *val]},
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def make_repo(tmp_path, server, monkeypatch):  # noqa: F811
    """A git repository with a params.yaml whose one source is the served HC-STVG v2 archive."""
    base, state = server
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def make(
        late_end: bool = False,
        malformed: bool = False,
        skip_invalid: bool = False,
        max_invalid_fraction: float = 0.05,
        sha256: str | None = None,
    ) -> Path:
        archive = _release(late_end, malformed)
        state.files["/hcstvg_v2.tar.gz"] = archive
        repo = tmp_path / "repo"
        repo.mkdir()
        params = {
            "data": {
                "dataset": "hcstvg-v2",
                "train_annotation": "hcstvg_v2/anno_v2/train_v2.json",
                "test_annotation": "hcstvg_v2/anno_v2/val_v2.json",
                "video_root": "hcstvg_v2/video_parts",
                "skip_invalid": skip_invalid,
                "max_invalid_fraction": max_invalid_fraction,
            },
            "download": {
                "sources": [
                    {
                        "name": "hcstvg_v2",
                        "kind": "http",
                        "url": f"{base}/hcstvg_v2.tar.gz",
                        "sha256": sha256 or hashlib.sha256(archive).hexdigest(),
                        "extract": True,
                    }
                ],
                "retries": 1,
                "retry_delay_s": 0.1,
            },
            "registry": {"experiment": "stvg-test"},
        }
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        (repo / ".gitignore").write_text("/mlflow/\n/.cache/\n")
        _git(repo, "init", "-q")
        _git(repo, "add", "params.yaml", ".gitignore")
        _git(repo, "commit", "-qm", "params")
        return repo

    return make, state


def _client(repo: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")


def _artifact_json(client, run_id: str, path: str, dst: Path) -> dict:
    return json.loads(Path(client.download_artifacts(run_id, path, str(dst))).read_text())


def test_download_flow_fetches_checks_and_versions_data(prefect_harness, make_repo, tmp_path):
    from flows import dvc
    from flows.download import download_flow

    make, state = make_repo
    repo = make()
    half = len(state.files["/hcstvg_v2.tar.gz"]) // 2
    state.truncate_next = half  # the first transfer breaks: the task's retry resumes it with Range
    result = download_flow(params_path=str(repo / "params.yaml"))
    assert state.ranges == [None, f"bytes={half}-"]

    assert (repo / "data" / "hcstvg_v2" / "anno_v2" / "val_v2.json").is_file()
    assert result.raw_data_version == dvc.dvc_file_hash(repo / "data.dvc")
    assert [r.name for r in result.reports] == [
        "raw_train",
        "raw_train_invalid",
        "raw_test",
        "raw_test_invalid",
    ]
    assert all(r.success for r in result.reports)
    assert (repo / ".dvc" / "config").read_text().count("analytics = false") == 1

    again = download_flow(params_path=str(repo / "params.yaml"))  # unchanged source: no transfer
    assert again.raw_data_version == result.raw_data_version
    assert [s["status"] for s in again.sources] == ["up-to-date"]
    assert len(state.ranges) == 2


def test_pipeline_logs_one_run_with_raw_data_version_and_reports(prefect_harness, make_repo, tmp_path):
    from flows import dvc
    from flows.pipeline import pipeline_flow

    make, _ = make_repo
    repo = make()
    result = pipeline_flow(params_path=str(repo / "params.yaml"))

    client = _client(repo)
    run = client.get_run(result.run_id)
    md5 = dvc.dvc_file_hash(repo / "data.dvc")
    assert run.info.status == "FINISHED"
    assert run.data.tags["raw_data_version"] == md5 == result.raw_data_version
    assert run.data.params["raw_data_version"] == md5
    assert run.data.params["download.retries"] == "1"
    assert run.data.params["data.dataset"] == "hcstvg-v2"
    assert run.data.tags["git_commit"] == _git(repo, "rev-parse", "HEAD")
    assert run.data.tags["version.dvc"]
    report = _artifact_json(client, run.info.run_id, "checks/raw_test.json", tmp_path / "a")
    assert report["success"] and report["n_rows"] == 2

    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert [(c.info.run_name, c.info.status) for c in children] == [("download", "FINISHED")]
    # artifacts in the project's store, not a CWD-relative ./mlruns
    assert list((repo / "mlflow" / "artifacts").rglob("raw_train.json"))
    assert not (Path.cwd() / "mlruns").exists()


def test_raw_check_failure_stops_the_flow_and_fails_the_run(prefect_harness, make_repo, tmp_path):
    from flows.pipeline import PipelineFailed, pipeline_flow

    make, _ = make_repo
    repo = make(late_end=True)
    with pytest.raises(PipelineFailed) as excinfo:
        pipeline_flow(params_path=str(repo / "params.yaml"))
    message = str(excinfo.value)
    assert "stage `download`" in message
    assert "ExpectColumnPairValuesAToBeGreaterThanB" in message and "late_clip" in message
    assert "clip_c" not in message
    assert not (repo / "data.dvc").exists()  # data that failed its gate is not versioned

    client = _client(repo)
    run = client.get_run(excinfo.value.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["stvg.failed_stage"] == "download"
    failure = _artifact_json(client, run.info.run_id, "failure.json", tmp_path / "a")
    assert failure["stage"] == "download" and not failure["check"]["success"]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert [c.info.status for c in children] == ["FAILED"]


def test_dvc_stage_is_reproduced_gated_and_logged(prefect_harness, make_repo, tmp_path, monkeypatch):
    from flows import pipeline
    from stvg.checks.core import Expect, run_suite

    make, _ = make_repo
    repo = make()
    script = (
        "import json, os, pathlib; p = pathlib.Path('artifacts/count'); p.mkdir(parents=True, exist_ok=True); "
        "(p / 'summary.json').write_text(json.dumps({'n': 3, 'run': os.environ.get('MLFLOW_RUN_ID', '')}))"
    )
    stage = {"cmd": f'{sys.executable} -c "{script}"', "deps": ["data"], "outs": ["artifacts/count"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"count": stage}}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'server-like.db'}")

    def check_count(root: Path, params) -> object:
        import pandas as pd

        n = json.loads((root / "artifacts" / "count" / "summary.json").read_text())["n"]
        table = pd.DataFrame({"item": ["count"], "n": [n]})
        expect = [
            Expect("ExpectColumnValuesToBeBetween", {"column": "n", "max_value": limit}, "count is small")
        ]
        return run_suite("count", table, expect, id_column="item")

    limit = 10
    monkeypatch.setattr(pipeline, "STAGES", [pipeline.PipelineStage("count", check=check_count)])
    result = pipeline.pipeline_flow(params_path=str(repo / "params.yaml"))
    assert result.stages == ["download", "count"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'server-like.db'}")
    children = {
        c.info.run_name: c
        for c in client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    }
    count_run = children["count"]
    assert count_run.info.status == "FINISHED"
    assert count_run.data.tags["dvc.out.artifacts/count"]
    summary = json.loads((repo / "artifacts" / "count" / "summary.json").read_text())
    assert summary["run"] == count_run.info.run_id  # the stage saw its own MLflow run id
    assert _artifact_json(client, result.run_id, "checks/count.json", tmp_path / "a")["success"]

    limit = 2  # the same outputs now fail the gate: the flow stops at `count`
    with pytest.raises(
        pipeline.PipelineFailed, match=r"stage `count`[\s\S]*ExpectColumnValuesToBeBetween"
    ) as excinfo:
        pipeline.pipeline_flow(params_path=str(repo / "params.yaml"), stages=["count"])
    assert client.get_run(excinfo.value.run_id).info.status == "FAILED"


def test_pipeline_logs_run_params_and_artifacts_to_an_mlflow_server(
    prefect_harness, make_repo, mlflow_server, monkeypatch, tmp_path
):
    from mlflow import MlflowClient

    from flows import dvc
    from flows.pipeline import pipeline_flow

    make, _ = make_repo
    repo = make()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = pipeline_flow(params_path=str(repo / "params.yaml"))
    assert result.tracking_uri == mlflow_server

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(result.run_id)
    md5 = dvc.dvc_file_hash(repo / "data.dvc")
    assert run.info.status == "FINISHED"
    assert run.data.tags["raw_data_version"] == md5 == result.raw_data_version
    assert run.data.params["raw_data_version"] == md5
    assert run.data.params["data.dataset"] == "hcstvg-v2"
    assert run.data.tags["git_commit"] == _git(repo, "rev-parse", "HEAD")
    # artifacts went through the server (its artifact store), not into the repository
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert _artifact_json(client, run.info.run_id, "checks/raw_train.json", tmp_path / "a")["success"]
    params_copy = Path(client.download_artifacts(run.info.run_id, "inputs/params.yaml", str(tmp_path / "b")))
    assert params_copy.read_text() == (repo / "params.yaml").read_text()
    (child,) = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert child.info.run_name == "download" and child.info.status == "FINISHED"
    sources = _artifact_json(client, child.info.run_id, "download/sources.json", tmp_path / "c")
    assert [s["name"] for s in sources] == ["hcstvg_v2"]
    assert not (repo / "mlflow").exists()


def test_skip_invalid_drops_a_malformed_sample_and_the_flow_lists_it(
    prefect_harness, make_repo, tmp_path, caplog
):
    from flows.pipeline import pipeline_flow

    make, _ = make_repo
    repo = make(malformed=True, skip_invalid=True, max_invalid_fraction=0.5)  # 1 of 3 skipped
    with caplog.at_level(logging.WARNING):
        result = pipeline_flow(params_path=str(repo / "params.yaml"))

    client = _client(repo)
    raw_train = _artifact_json(client, result.run_id, "checks/raw_train.json", tmp_path / "a")
    assert raw_train["success"] and raw_train["n_rows"] == 2  # the gate ran on the two good samples
    assert (repo / "data.dvc").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 invalid sample(s) skipped" in m and "train_v2.json" in m for m in warnings), warnings
    (listed,) = [m for m in warnings if "skipped broken_clip in" in m]
    assert "train_v2.json" in listed and "st_frame" in listed


def test_skip_invalid_past_max_invalid_fraction_stops_the_flow_naming_the_samples(prefect_harness, make_repo):
    from flows.pipeline import PipelineFailed, pipeline_flow

    make, _ = make_repo
    repo = make(malformed=True, skip_invalid=True)  # 1 of 3 train samples skipped > the 0.05 default
    with pytest.raises(PipelineFailed) as excinfo:
        pipeline_flow(params_path=str(repo / "params.yaml"))
    message = str(excinfo.value)
    assert "stage `download`" in message and "raw_train_invalid" in message
    assert "data.max_invalid_fraction" in message and "broken_clip (" in message and "st_frame" in message
    assert not (repo / "data.dvc").exists()


def test_checksum_mismatch_is_final_and_downloaded_once(prefect_harness, make_repo):
    from flows.download import download_flow

    make, state = make_repo
    repo = make(sha256="0" * 64)  # retries: 1 in params, which a transient error would use
    with pytest.raises(RuntimeError, match="checksum mismatch") as excinfo:
        download_flow(params_path=str(repo / "params.yaml"))
    assert "0" * 64 in str(excinfo.value)
    assert state.ranges == [None]  # one transfer: the same bytes would come back on a retry
    assert not (repo / "data").exists() or not any((repo / "data").iterdir())


def test_a_malformed_sample_without_skip_invalid_stops_the_flow_naming_file_and_sample(
    prefect_harness, make_repo
):
    from flows.pipeline import PipelineFailed, pipeline_flow

    make, _ = make_repo
    repo = make(malformed=True, skip_invalid=False)
    with pytest.raises(PipelineFailed) as excinfo:
        pipeline_flow(params_path=str(repo / "params.yaml"))
    message = str(excinfo.value)
    assert "stage `download`" in message
    assert "anno_v2/train_v2.json: sample 'broken_clip'" in message and "st_frame" in message
    assert "data.skip_invalid" in message  # the message says how to drop such samples instead
    assert not (repo / "data.dvc").exists()
    assert _client(repo).get_run(excinfo.value.run_id).data.tags["stvg.failed_stage"] == "download"


# A dvc stage named like the real one writes broken outputs; the flow's gate for that name stops it.
# stage -> (the script the dvc stage runs, the gate columns that must fail)
BROKEN_OUTPUTS = {
    "detector": (
        """
        p.joinpath("weights.pt").write_bytes(b"")
        p.joinpath("metrics.json").write_text(json.dumps({"source": "trained", "mAP50": float("nan")}))
        """,
        {"weights_bytes", "mAP50"},
    ),
    "base_model": (
        """
        p.joinpath("config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
        p.joinpath("summary.json").write_text(json.dumps({"model": "tiny", "n_params": 0}))
        """,
        {"has_weights", "has_tokenizer", "has_template", "n_params"},
    ),
    "train": (
        """
        p.joinpath("model").mkdir()
        row = {"step": 1, "epoch": 3.0, "loss": float("nan"), "reward": 0.0}
        p.joinpath("log_history.json").write_text(json.dumps([row]))
        """,
        {"finite", "has_config", "has_weights", "has_tokenizer", "has_template"},
    ),
}


@pytest.mark.parametrize("stage", sorted(BROKEN_OUTPUTS))
def test_the_new_stage_gates_stop_the_flow_naming_stage_check_and_items(prefect_harness, make_repo, stage):
    from flows.pipeline import PipelineFailed, pipeline_flow

    make, _ = make_repo
    repo = make()
    script, columns = BROKEN_OUTPUTS[stage]
    header = f"import json, pathlib\np = pathlib.Path('artifacts/{stage}')\np.mkdir(parents=True)\n"
    (repo / "make_outputs.py").write_text(header + textwrap.dedent(script))
    spec = {"cmd": f"{sys.executable} make_outputs.py", "deps": ["data"], "outs": [f"artifacts/{stage}"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {stage: spec}}))

    with pytest.raises(PipelineFailed) as excinfo:
        pipeline_flow(params_path=str(repo / "params.yaml"))
    assert excinfo.value.stage == stage and excinfo.value.report is not None  # the gate, not the stage
    assert {f["column"] for f in excinfo.value.report.failures} == columns
    message = str(excinfo.value)
    assert f"stage `{stage}`" in message and f"check `{stage}` failed" in message
    assert str(repo / "artifacts" / stage) in message  # the offending folder
    client = _client(repo)
    run = client.get_run(excinfo.value.run_id)
    assert run.info.status == "FAILED" and run.data.tags["stvg.failed_stage"] == stage
