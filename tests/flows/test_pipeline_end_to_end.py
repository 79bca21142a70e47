"""The real pipeline flow end to end: Prefect (test harness), DVC stages, MLflow sqlite, in a temp git repo.

One module-scoped run of ``flows.pipeline.pipeline_flow`` on a shrunken embedded default (download ->
base_model -> detector -> prompt -> label -> train -> evaluate -> register + promote) is shared by the
scenarios below, which run in file order: the registered model and its lineage, a no-op second run,
the lineage command, and last a label set corrupted through its params, which the label gate stops.

The shrunken params keep every stage real but small: 4 + 3 synthetic videos of 4 s, a detector trained
at 96 px on 320 frames for 16 epochs (measured: ~65 s, mAP50 0.72; 64 px gave mAP50 0.41 and missed
whole videos, 64 frames x 3 epochs or 160 x 8 at 128 px gave mAP50 0 and the prompt stage then rightly
fails with "nothing detected"), one GRPO step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "stvg-r1"
PROJECT_FILES = ("dvc.yaml", ".gitignore", ".dvcignore")


def _shrunken_params() -> dict[str, Any]:
    """The project's params.yaml with the embedded default made small enough for a test."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["synthetic"].update(n_train=4, n_val=3, duration_s=4.0)
    params["detector"].update(epochs=16, n_train_frames=320, n_val_frames=32, imgsz=96, conf=0.1)
    # The small detector misses some targets: half of a split may be dropped (measured 0.5 on both
    # splits); the gate still stops a split without any label. The default bound is 0.2.
    params["label"].update(max_drop_fraction=0.75)
    params["train"]["grpo"].update(max_steps=1, save_steps=1)
    params["registry"].update(model_name=MODEL_NAME, experiment="stvg-e2e")
    return params


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _make_repo(repo: Path) -> Path:
    """A git repository holding a copy of the project's pipeline files and the shrunken params."""
    repo.mkdir()
    shutil.copytree(
        REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in PROJECT_FILES:
        if (REPO_ROOT / name).is_file():
            shutil.copy2(REPO_ROOT / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(_shrunken_params(), sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    return repo


def _snapshot(repo: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file the DVC stages wrote: artifacts/ and dvc.lock.

    data.dvc is left out: the download flow's `dvc add data` rewrites it (same content) on every run.
    """
    files = [p for p in (repo / "artifacts").rglob("*") if p.is_file()]
    files += [repo / "dvc.lock"]
    return {str(p.relative_to(repo)): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


def _client(repo: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")


def _versions(client) -> list:
    return client.search_model_versions(f"name='{MODEL_NAME}'")


def _children(client, run) -> dict[str, Any]:
    found = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    return {c.info.run_name: c for c in found}


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory):
    """The temp repo after one full pipeline run, with its result and the pins that run wrote."""
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows import dvc
    from flows.pipeline import pipeline_flow

    repo = _make_repo(tmp_path_factory.mktemp("e2e") / "repo")
    home = str(tmp_path_factory.mktemp("prefect_home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("STVG_ROOT", str(repo))  # `stvg lineage` finds the temp repo's store
        with temporary_settings({PREFECT_HOME: home}), prefect_test_harness(server_startup_timeout=180):
            result = pipeline_flow(params_path=str(repo / "params.yaml"))
            yield {
                "repo": repo,
                "result": result,
                "hashes": dvc.lock_hashes(repo),
                "raw": dvc.dvc_file_hash(repo / "data.dvc"),
                "lock_text": (repo / "dvc.lock").read_text(encoding="utf-8"),
                "snapshot": _snapshot(repo),
            }


def test_flow_registers_the_policy_as_champion_with_the_dvc_lineage(pipeline_repo) -> None:
    from flows.pipeline import STAGES
    from flows.registry import CHALLENGER, CHAMPION, stage_version

    repo, result, hashes = pipeline_repo["repo"], pipeline_repo["result"], pipeline_repo["hashes"]
    assert result.stages == ["download", "base_model", "detector", "prompt", "label", "train", "evaluate"]
    assert set(hashes) == set(result.stages) - {"download"}
    client = _client(repo)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    children = _children(client, run)
    assert {name: c.info.status for name, c in children.items()} == dict.fromkeys(result.stages, "FINISHED")
    assert {s.name for s in STAGES} <= set(children)

    (version,) = _versions(client)
    assert result.model_version == f"models:/{MODEL_NAME}/{version.version}"
    assert version.run_id == result.run_id
    assert version.tags["raw_data_version"] == pipeline_repo["raw"] == result.raw_data_version
    assert version.tags["prompted_data_version"] == stage_version(hashes, "prompt")
    assert version.tags["label_data_version"] == stage_version(hashes, "label")
    assert version.tags["git_commit"] == _git(repo, "rev-parse", "HEAD")
    assert run.data.tags["prompted_data_version"] == version.tags["prompted_data_version"]
    assert run.data.tags["label_data_version"] == version.tags["label_data_version"]
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    challenger = client.get_model_version_by_alias(MODEL_NAME, CHALLENGER)
    assert champion.version == challenger.version == version.version  # the first model is champion
    assert "m_vIoU" in json.loads(version.tags["metrics"])


def _artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path or None):
        out |= _artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_stage_runs_carry_their_numbers_and_pictures(pipeline_repo) -> None:
    repo, result = pipeline_repo["repo"], pipeline_repo["result"]
    client = _client(repo)
    children = _children(client, client.get_run(result.run_id))

    prompt = _artifact_paths(client, children["prompt"].info.run_id)
    assert "previews/sampled_frames.png" in prompt
    assert any(p.startswith("previews/") and p.endswith(".mp4") for p in prompt)
    assert client.get_run(children["prompt"].info.run_id).data.metrics["prompt/processed"] == 7

    label = json.loads((repo / "artifacts" / "label" / "metrics.json").read_text(encoding="utf-8"))
    logged = client.get_run(children["label"].info.run_id).data.metrics
    assert logged["label/ceiling_m_vIoU"] == pytest.approx(label["ceiling_m_vIoU"])

    train_run = children["train"].info.run_id
    assert {"train/reward_curves.png", "train/log_history.json"} <= _artifact_paths(client, train_run)
    history = client.get_metric_history(train_run, "reward")  # TRL's per-step logging, live
    assert [m.step for m in history] == [1]

    evaluate_run = children["evaluate"].info.run_id
    plots = {p for p in _artifact_paths(client, evaluate_run) if p.startswith("evaluate/plots/")}
    assert plots and all(p.endswith(".png") for p in plots)
    assert "evaluate/m_vIoU" in client.get_run(evaluate_run).data.metrics


def test_registered_model_grounds_a_raw_video(pipeline_repo, global_mlflow_uri) -> None:
    """models:/stvg-r1@champion alone grounds a raw benchmark video: prompting, policy, tube."""
    import mlflow
    import pandas as pd

    from flows.serving import OUTPUT_COLUMNS

    repo = pipeline_repo["repo"]
    video = min(repo.glob("data/synthetic/video_parts/*/*.mp4"))
    global_mlflow_uri(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    bundle = loaded.unwrap_python_model().grounder.bundle
    assert {"config.json", "model.safetensors", "tokenizer.json", "prompt_template.json"} <= {
        p.name for p in bundle.policy_dir.iterdir()
    }
    assert bundle.params.prompt == yaml_params(repo).prompt  # the prompting it was trained with
    question = pd.DataFrame([{"video": str(video), "query": "the red square"}])
    answer = loaded.predict(question, params={"max_new_tokens": 8})  # too short for a whole answer
    assert list(answer.columns) == list(OUTPUT_COLUMNS) and len(answer) == 1
    row = answer.iloc[0]
    assert isinstance(row.answer, str) and row.answer and not row.ok
    assert "not parsable" in row.error or "nothing detected" in row.error
    assert row.model_bundle == bundle.identity[:16]


def yaml_params(repo: Path) -> Any:
    from stvg.config import load_params

    return load_params(repo / "params.yaml")


def test_second_run_reproduces_nothing_and_registers_nothing(pipeline_repo, monkeypatch) -> None:
    from flows import dvc
    from flows.pipeline import pipeline_flow

    repo = pipeline_repo["repo"]
    outputs: dict[str, str] = {}
    real_repro = dvc.repro

    def recording_repro(stage: str, *args: Any, **kwargs: Any) -> str:
        outputs[stage] = real_repro(stage, *args, **kwargs)
        return outputs[stage]

    monkeypatch.setattr(dvc, "repro", recording_repro)
    again = pipeline_flow(params_path=str(repo / "params.yaml"))

    assert list(outputs) == [s for s in again.stages if s != "download"]
    for stage, text in outputs.items():
        assert "Running stage" not in text and "Updating lock file" not in text, (stage, text[-500:])
        assert "up to date" in text, (stage, text[-500:])
    assert _snapshot(repo) == pipeline_repo["snapshot"]
    assert (repo / "dvc.lock").read_text(encoding="utf-8") == pipeline_repo["lock_text"]
    assert dvc.dvc_file_hash(repo / "data.dvc") == pipeline_repo["raw"] == again.raw_data_version

    client = _client(repo)
    assert [str(v.version) for v in _versions(client)] == [
        pipeline_repo["result"].model_version.rsplit("/", 1)[1]
    ]
    assert again.model_version == pipeline_repo["result"].model_version
    assert client.get_run(again.run_id).info.status == "FINISHED"
    assert client.get_run(again.run_id).data.tags["registered_version"] == again.model_version.rsplit("/")[-1]


def test_lineage_command_resolves_the_champion_to_the_dvc_lock_hashes(pipeline_repo, capsys) -> None:
    from flows.lineage import main
    from flows.registry import stage_version

    hashes = pipeline_repo["hashes"]
    capsys.readouterr()
    assert main([f"models:/{MODEL_NAME}@champion", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info["version"] == pipeline_repo["result"].model_version.rsplit("/", 1)[1]
    assert info["raw_data_version"] == pipeline_repo["raw"]
    assert info["prompted_data_version"] == stage_version(hashes, "prompt")
    assert info["label_data_version"] == stage_version(hashes, "label")
    assert info["git_commit"] == _git(pipeline_repo["repo"], "rev-parse", "HEAD")
    assert info["run_id"] == pipeline_repo["result"].run_id
    assert {"prompt", "label", "train"} <= set(info["stage_run_ids"])
    assert {"dvc.lock", "data.dvc"} <= set(info["lineage_files"])


# The prompt stage is left out: its own determinism (entries independent of the videos prompted before
# them) is the prompting engine's contract and is tested with it.
@pytest.mark.parametrize("stage", ["detector", "label", "base_model", "train", "evaluate"])
def test_a_stage_run_again_writes_the_same_dvc_lock_hashes(pipeline_repo, stage: str) -> None:
    """Every hashed output is a pure function of deps, params and code: a forced re-run changes nothing."""
    from flows import dvc

    repo = pipeline_repo["repo"]
    if stage == "train":  # train from scratch, not from the previous run's last checkpoint
        shutil.rmtree(repo / "artifacts" / "train" / "checkpoints")
    text = dvc.run_dvc("repro", "--force", "--single-item", stage, cwd=repo)
    assert "Running stage" in text, text[-500:]
    assert dvc.lock_hashes(repo)[stage] == pipeline_repo["hashes"][stage]
    info = json.loads((repo / "artifacts" / "run_info" / f"{stage}.json").read_text(encoding="utf-8"))
    assert info["total_s"] > 0 and info["host"]  # the wall time was recorded, outside the version
    pipeline_repo["snapshot"] = _snapshot(repo)  # same bytes, new file times: the later scenarios compare


def test_an_identically_retrained_policy_keeps_its_version(pipeline_repo) -> None:
    from flows import dvc
    from flows.pipeline import POLICY_VERSION_TAG
    from flows.registry import policy_version

    client = _client(pipeline_repo["repo"])
    (version,) = _versions(client)
    assert version.tags[POLICY_VERSION_TAG] == policy_version(dvc.lock_hashes(pipeline_repo["repo"]))


def test_corrupted_label_set_is_stopped_by_the_label_gate_before_training(pipeline_repo) -> None:
    from flows.pipeline import PipelineFailed, pipeline_flow

    repo = pipeline_repo["repo"]
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    # Labels no vote can meet: every sample is dropped, and no drop at all is allowed.
    params["label"].update(
        min_vote_share=1.0, flag_vote_share=1.0, min_mean_iou=1.0, min_presence=1.0, max_drop_fraction=0.0
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = pipeline_repo["snapshot"]

    with pytest.raises(PipelineFailed) as excinfo:
        pipeline_flow(params_path=str(repo / "params.yaml"))
    assert excinfo.value.stage == "label"
    assert excinfo.value.report is not None and not excinfo.value.report.success  # the gate, not the stage
    assert "ExpectTableRowCountToBeBetween" in str(excinfo.value)
    assert "every sample was dropped" in str(excinfo.value)

    after = _snapshot(repo)
    assert after["artifacts/label/summary.json"] != before["artifacts/label/summary.json"]  # label re-ran
    label_outputs = ("artifacts/label/", "artifacts/run_info/label.json", "dvc.lock")
    upstream_and_train = [p for p in before if not p.startswith(label_outputs)]
    assert {p: after[p] for p in upstream_and_train} == {p: before[p] for p in upstream_and_train}

    client = _client(repo)
    run = client.get_run(excinfo.value.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["stvg.failed_stage"] == "label"
    children = _children(client, run)
    assert children["label"].info.status == "FAILED"
    # base_model is the first stage (a no-op here): it ran before the data stages
    assert children["base_model"].info.status == "FINISHED"
    assert not {"train", "evaluate"} & set(children)
    assert len(_versions(client)) == 1
