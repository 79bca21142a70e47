"""Registration, gated promotion and lineage against a REAL MLflow sqlite store in a temporary folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from flows import lineage as lineage_cli
from flows import promote as promote_cli
from flows.lineage import LineageLookupError, model_lineage, resolve_model_uri
from flows.promote import PromotionError, promote, register_and_promote
from flows.registry import (
    CHALLENGER,
    CHAMPION,
    LineageError,
    params_hash,
    read_lineage,
    register_model,
    stage_version,
)
from flows.serving import fetch_model
from stvg.config import Params, RegistryParams, params_to_dict
from stvg.registry_gate import GateError

RAW_MD5 = "0f3c2a1b9e8d7c6b5a4f3e2d1c0b9a88.dir"
PROMPT_MD5 = "11111111111111111111111111111111.dir"
LABEL_MD5 = "22222222222222222222222222222222.dir"
LABEL_REPORT_MD5 = "33333333333333333333333333333333"
METRICS = {"m_vIoU": 0.30, "m_tIoU": 0.50, "vIoU@0.3": 0.40, "vIoU@0.5": 0.20}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, str]:
    """One sqlite store per module (migrations take seconds); each test uses its own model name."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment("stvg-test", artifact_location=(root / "artifacts").as_uri())
    return client, experiment_id


@pytest.fixture
def client(store: tuple[MlflowClient, str]) -> MlflowClient:
    return store[0]


@pytest.fixture
def params(request: pytest.FixtureRequest) -> Params:
    name = "stvg-" + request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]
    return Params(
        registry=RegistryParams(model_name=name, primary_metric="m_vIoU", margin=0.0, tolerance=0.02)
    )


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A tiny stand-in for the save_pretrained folder (the real one comes from the train stage)."""
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (folder / "prompt_template.json").write_text('{"version": 1}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    return folder


@pytest.fixture
def detector(tmp_path: Path) -> Path:
    """Stand-in detector weights: registration copies and hashes them, it never loads them."""
    path = tmp_path / "detector.pt"
    path.write_bytes(b"detector weights " * 8)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A git repository with a real-format data.dvc and dvc.lock, committed."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "data.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": RAW_MD5, "size": 1234, "nfiles": 5, "hash": "md5", "path": "data"}]})
    )
    lock = {
        "schema": "2.0",
        "stages": {
            "prompt": {
                "cmd": "stvg prompt",
                "outs": [
                    {"path": "artifacts/prompt", "hash": "md5", "md5": PROMPT_MD5, "size": 10, "nfiles": 2}
                ],
            },
            "label": {
                "cmd": "stvg label",
                "outs": [
                    {"path": "artifacts/label/targets.jsonl", "hash": "md5", "md5": LABEL_MD5, "size": 3},
                    {
                        "path": "artifacts/label/report.json",
                        "hash": "md5",
                        "md5": LABEL_REPORT_MD5,
                        "size": 4,
                    },
                ],
            },
        },
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pins"], cwd=root, check=True)
    return root


@pytest.fixture
def parent_run(client: MlflowClient, store: tuple[MlflowClient, str]) -> Iterator[str]:
    """A pipeline-like parent run with params and two nested stage runs."""
    run = client.create_run(store[1], run_name="pipeline")
    client.log_param(run.info.run_id, "registry.primary_metric", "m_vIoU")
    client.log_param(run.info.run_id, "label.min_vote_share", "0.5")
    for stage in ("label", "train"):
        child = client.create_run(
            store[1], run_name=stage, tags={"mlflow.parentRunId": run.info.run_id, "stage": stage}
        )
        client.set_terminated(child.info.run_id)
    yield run.info.run_id
    client.set_terminated(run.info.run_id)


def _lineage(commit: str = "a" * 40) -> dict[str, str]:
    return {
        "raw_data_version": RAW_MD5,
        "prompted_data_version": PROMPT_MD5,
        "label_data_version": LABEL_MD5,
        "git_commit": commit,
    }


def _register(client: MlflowClient, store, params: Params, policy_dir: Path, metrics: dict[str, float]):
    run = client.create_run(store[1])
    weights = policy_dir.parent / "detector.pt"
    weights.write_bytes(b"detector weights " * 8)
    version = register_model(
        client, run.info.run_id, policy_dir, params, _lineage(), metrics, detector_weights=weights
    )
    client.set_terminated(run.info.run_id)
    return version


# ----------------------------------------------------------------------------------------------- lineage


def test_read_lineage_returns_the_exact_pins(workspace: Path) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout
    lineage = read_lineage(workspace)
    assert lineage["raw_data_version"] == RAW_MD5
    assert lineage["prompted_data_version"] == PROMPT_MD5  # one output: its dvc.lock md5 verbatim
    assert lineage["git_commit"] == head.strip()
    assert lineage["git_dirty"] == "false"
    # Two outputs: one stable digest that changes when either output changes.
    label = lineage["label_data_version"]
    assert len(label) == 32 and label not in (LABEL_MD5, LABEL_REPORT_MD5)
    hashes = {"label": {"artifacts/label/targets.jsonl": LABEL_MD5, "artifacts/label/report.json": "4" * 32}}
    assert stage_version(hashes, "label") != label
    hashes["label"]["artifacts/label/report.json"] = LABEL_REPORT_MD5
    assert stage_version(hashes, "label") == label


def test_read_lineage_names_the_missing_pin_and_the_fix(workspace: Path) -> None:
    (workspace / "data.dvc").unlink()
    with pytest.raises(LineageError, match=r"data.dvc not found; run the download flow"):
        read_lineage(workspace)
    (workspace / "dvc.lock").unlink()
    with pytest.raises(LineageError, match=r"dvc.lock not found or empty; run the pipeline"):
        read_lineage(workspace)
    with pytest.raises(LineageError, match=r"no outputs for stage 'evaluate'; run `dvc repro evaluate`"):
        stage_version({}, "evaluate")


def test_params_hash_follows_the_values() -> None:
    assert params_hash(Params()) == params_hash(Params())
    assert params_hash(Params()) != params_hash(Params(seed=1))


# ----------------------------------------------------------------------------------------------- registration


def test_register_sets_lineage_tags_metrics_and_challenger_alias(
    client: MlflowClient,
    store,
    params: Params,
    policy_dir: Path,
    detector: Path,
    workspace: Path,
    parent_run: str,
    tmp_path: Path,
) -> None:
    lineage = read_lineage(workspace)
    files = {"dvc.lock": workspace / "dvc.lock", "data.dvc": workspace / "data.dvc"}
    version = register_model(
        client,
        parent_run,
        policy_dir,
        params,
        lineage,
        METRICS,
        detector_weights=detector,
        lineage_files=files,
    )

    assert version.name == params.registry.model_name and version.run_id == parent_run
    assert CHALLENGER in version.aliases
    for key in ("raw_data_version", "prompted_data_version", "label_data_version", "git_commit"):
        assert version.tags[key] == lineage[key]
    assert version.tags["params_hash"] == params_hash(params)
    assert json.loads(version.tags["metrics"]) == METRICS
    logged_metrics = client.get_run(parent_run).data.metrics
    assert logged_metrics["vIoU_at_0.3"] == METRICS["vIoU@0.3"]
    assert RAW_MD5 in version.description
    logged = {a.path for a in client.list_artifacts(parent_run, "lineage")}
    assert logged == {"lineage/dvc.lock", "lineage/data.dvc"}

    # models:/name@challenger fetches the grounding bundle: the policy folder, the detector by hash,
    # the prompting configuration and the grounding defaults it was registered with.
    local = fetch_model(f"models:/{params.registry.model_name}@{CHALLENGER}", tmp_path / "cache", client)
    assert local.version == str(version.version)
    folder = local.bundle_dir / "policy"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in policy_dir.iterdir())
    assert (folder / "model.safetensors").read_bytes() == (policy_dir / "model.safetensors").read_bytes()
    record = json.loads((local.bundle_dir / "bundle.json").read_text())
    assert (
        record["files"]["prompting/detector.pt"]["sha256"]
        == hashlib.sha256(detector.read_bytes()).hexdigest()
    )
    assert record["prompting"]["prompt"] == params_to_dict(params.prompt)
    assert record["ground"] == params_to_dict(params.ground)
    assert (
        fetch_model(f"models:/{params.registry.model_name}/{version.version}", tmp_path / "cache", client)
        == local
    )


def test_register_rejects_missing_model_folder_and_incomplete_lineage(
    client: MlflowClient, store, params: Params, policy_dir: Path, detector: Path, tmp_path: Path
) -> None:
    run_id = client.create_run(store[1]).info.run_id
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        register_model(
            client, run_id, tmp_path / "nope", params, _lineage(), METRICS, detector_weights=detector
        )
    with pytest.raises(FileNotFoundError, match="dvc repro detector"):
        register_model(
            client, run_id, policy_dir, params, _lineage(), METRICS, detector_weights=tmp_path / "x.pt"
        )
    partial = {k: v for k, v in _lineage().items() if k != "prompted_data_version"}
    with pytest.raises(LineageError, match="prompted_data_version"):
        register_model(client, run_id, policy_dir, params, partial, METRICS, detector_weights=detector)
    assert client.search_model_versions(f"name = '{params.registry.model_name}'") == []


# ----------------------------------------------------------------------------------------------- promotion


def _promote(client: MlflowClient, params: Params):
    r = params.registry
    return promote(client, r.model_name, r.primary_metric, r.margin, r.tolerance, r.gate_metrics)


def _champion(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


def test_promotion_moves_champion_only_when_the_gate_passes(
    client: MlflowClient, store, params: Params, policy_dir: Path
) -> None:
    name = params.registry.model_name
    with pytest.raises(PromotionError, match="no version with alias 'challenger'"):
        _promote(client, params)

    first = _register(client, store, params, policy_dir, METRICS)
    decision = _promote(client, params)
    assert decision.promote and "first model" in decision.reason
    assert _champion(client, name) == str(first.version)
    tags = client.get_model_version(name, first.version).tags
    assert tags["promotion.decision"] == "promoted" and tags["promotion.champion_version"] == "none"

    worse = _register(client, store, params, policy_dir, METRICS | {"m_vIoU": 0.25})
    decision = _promote(client, params)
    assert not decision.promote
    assert _champion(client, name) == str(first.version)
    recorded = client.get_model_version(name, worse.version)
    assert recorded.tags["promotion.decision"] == "rejected"
    assert recorded.tags["promotion.champion_version"] == str(first.version)
    assert "| m_vIoU | 0.2500 | 0.3000 | -0.0500 | primary-not-better |" in recorded.description
    assert RAW_MD5 in recorded.description  # the registration description is kept
    assert json.loads(recorded.tags["promotion.comparisons"])[0]["champion"] == pytest.approx(0.30)

    regressing = _register(client, store, params, policy_dir, METRICS | {"m_vIoU": 0.40, "m_tIoU": 0.40})
    decision = _promote(client, params)
    assert not decision.promote and decision.regressions == ("m_tIoU",)
    assert _champion(client, name) == str(first.version)
    assert client.get_model_version(name, regressing.version).tags["promotion.decision"] == "rejected"

    better = _register(client, store, params, policy_dir, METRICS | {"m_vIoU": 0.40, "m_tIoU": 0.49})
    decision = _promote(client, params)
    assert decision.promote
    assert _champion(client, name) == str(better.version)
    assert client.get_model_version(name, better.version).tags["promotion.champion_version"] == str(
        first.version
    )

    again = _promote(client, params)  # idempotent: nothing to compare, nothing re-recorded
    assert again.promote and "already the champion" in again.reason
    assert _champion(client, name) == str(better.version)


def test_promotion_with_missing_metric_is_a_clear_error_and_moves_nothing(
    client: MlflowClient, store, params: Params, policy_dir: Path
) -> None:
    name = params.registry.model_name
    first = _register(client, store, params, policy_dir, METRICS)
    _promote(client, params)
    _register(client, store, params, policy_dir, {"m_vIoU": 0.9})
    with pytest.raises(GateError, match=r"challenger lacks metric"):
        _promote(client, params)
    assert _champion(client, name) == str(first.version)


def test_promote_cli_prints_one_json_line(
    client: MlflowClient, store, params: Params, policy_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    _register(client, store, params, policy_dir, METRICS)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"registry": {"model_name": params.registry.model_name}}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    monkeypatch.setenv("STVG_ROOT", str(tmp_path))
    assert promote_cli.main(["--params", str(params_file), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["promote"] is True and payload["champion_version"] == payload["challenger_version"] == "1"

    assert promote_cli.main(["--params", str(params_file)]) == 0
    out = capsys.readouterr().out
    assert "metric" in out.splitlines()[0] and "already the champion" in out


# ----------------------------------------------------------------------------------------------- lineage CLI


def test_lineage_resolves_to_the_exact_dvc_lock_hashes(
    client: MlflowClient,
    store,
    params: Params,
    policy_dir: Path,
    detector: Path,
    workspace: Path,
    parent_run: str,
    monkeypatch,
    capsys,
) -> None:
    name = params.registry.model_name
    files = {"dvc.lock": workspace / "dvc.lock", "data.dvc": workspace / "data.dvc"}
    version = register_model(
        client,
        parent_run,
        policy_dir,
        params,
        read_lineage(workspace),
        METRICS,
        detector_weights=detector,
        lineage_files=files,
    )
    _promote(client, params)

    for uri in (f"models:/{name}@champion", f"models:/{name}/{version.version}", f"models:/{name}/latest"):
        assert str(resolve_model_uri(client, uri).version) == str(version.version)
    info = model_lineage(client, f"models:/{name}@champion")
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    assert info["raw_data_version"] == yaml.safe_load((workspace / "data.dvc").read_text())["outs"][0]["md5"]
    assert info["prompted_data_version"] == lock["stages"]["prompt"]["outs"][0]["md5"]
    label_outs = {o["path"]: o["md5"] for o in lock["stages"]["label"]["outs"]}
    assert info["label_data_version"] == stage_version({"label": label_outs}, "label")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout
    assert info["git_commit"] == head.strip()
    assert info["run_id"] == parent_run
    assert set(info["stage_run_ids"]) == {"label", "train"}
    assert info["params"]["label.min_vote_share"] == "0.5"
    assert info["aliases"] == [CHALLENGER, CHAMPION]
    assert info["commands"][0] == f"git checkout {head.strip()}"
    assert any(f"--run-id {parent_run} --artifact-path lineage" in c for c in info["commands"])
    assert any(c.startswith("dvc pull") for c in info["commands"])

    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    monkeypatch.setenv("STVG_ROOT", str(workspace))
    assert lineage_cli.main([f"models:/{name}@champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompted_data_version"] == PROMPT_MD5
    assert lineage_cli.main([f"models:/{name}@champion"]) == 0
    text = capsys.readouterr().out
    assert f"prompted_data_version  {PROMPT_MD5}" in text and "git checkout" in text


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("stvg-r1@champion", "is not a model URI"),
        ("models:/no-such-model@champion", "not found in the registry"),
        ("models:/no-such-model/latest", "has no versions"),
    ],
)
def test_lineage_of_an_unknown_model_is_a_clear_error(client: MlflowClient, uri: str, message: str) -> None:
    with pytest.raises(LineageLookupError, match=message):
        resolve_model_uri(client, uri)


def test_register_and_promote_reads_the_workspace_artifacts(
    client: MlflowClient, params: Params, workspace: Path, parent_run: str
) -> None:
    model = workspace / "artifacts" / "train" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (workspace / "artifacts" / "detector").mkdir()
    (workspace / "artifacts" / "detector" / "weights.pt").write_bytes(b"weights")
    metrics_file = workspace / "artifacts" / "evaluate" / "metrics.json"
    metrics_file.parent.mkdir(parents=True)
    metrics_file.write_text(json.dumps(METRICS | {"protocol": "official", "strict": True}))
    (workspace / "params.yaml").write_text("registry: {}\n")

    version, decision = register_and_promote(client, parent_run, workspace, params)
    assert json.loads(version.tags["metrics"]) == METRICS  # numbers only
    assert version.tags["prompted_data_version"] == PROMPT_MD5
    assert decision.promote and CHAMPION in version.aliases and CHALLENGER in version.aliases
    logged = {a.path for a in client.list_artifacts(parent_run, "lineage")}
    assert logged == {"lineage/dvc.lock", "lineage/data.dvc", "lineage/params.yaml"}

    metrics_file.unlink()
    with pytest.raises(PromotionError, match=r"metrics.json not found; run `dvc repro evaluate`"):
        register_and_promote(client, parent_run, workspace, params)


def test_pipeline_register_prints_the_side_by_side_table_also_on_a_no_op_rerun(
    client: MlflowClient,
    store,
    params: Params,
    workspace: Path,
    parent_run: str,
    policy_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows import pipeline

    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    lock["stages"]["train"] = {
        "cmd": "stvg train",
        "outs": [{"path": "artifacts/train/model", "md5": "t" * 32}],
    }
    (workspace / "dvc.lock").write_text(yaml.safe_dump(lock))
    model = workspace / "artifacts" / "train" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (workspace / "artifacts" / "detector").mkdir()
    (workspace / "artifacts" / "detector" / "weights.pt").write_bytes(b"weights")
    (workspace / "artifacts" / "evaluate").mkdir(parents=True)
    (workspace / "artifacts" / "evaluate" / "metrics.json").write_text(json.dumps(METRICS))
    (workspace / "params.yaml").write_text("registry: {}\n")
    name = params.registry.model_name

    uri, fresh = pipeline._register(client, parent_run, workspace, params)
    assert uri == f"models:/{name}/1" and "promoted to champion" in fresh
    header = fresh.splitlines()[1]
    assert header.split() == ["metric", "challenger", "champion", "delta", "status"]

    again_uri, again = pipeline._register(client, parent_run, workspace, params)  # same train outputs
    assert again_uri == uri and len(client.search_model_versions(f"name='{name}'")) == 1
    lines = again.splitlines()
    assert "already holds this policy" in lines[0] and lines[0].endswith("it is the champion")
    assert lines[1].split() == header.split()
    assert lines[3].split()[:4] == ["m_vIoU", "0.3000", "0.3000", "+0.0000"]

    # A better policy became champion since: the re-run shows version 1 beside version 2's numbers.
    _register(client, store, params, policy_dir, METRICS | {"m_vIoU": 0.45})
    promote(client, name, "m_vIoU", 0.0, 0.02)
    _, behind = pipeline._register(client, parent_run, workspace, params)
    assert behind.splitlines()[0].endswith("the champion is version 2")
    assert behind.splitlines()[3].split()[:4] == ["m_vIoU", "0.3000", "0.4500", "-0.1500"]

    result = pipeline.PipelineResult(
        "run", "1", "sqlite://", "raw", ["download"], again_uri, behind, model_name=name
    )
    print("\n".join(pipeline.next_steps(result)))
    out = capsys.readouterr().out
    assert behind in out
    assert f"stvg lineage models:/{name}@champion" in out and "models:/stvg-r1@" not in out


def test_experiment_is_created_as_model_training(client: MlflowClient, tmp_path: Path) -> None:
    """MLflow 3's UI opens an experiment on its GenAI view unless it is marked as model training."""
    from flows.tracking import EXPERIMENT_KIND_TAG, ensure_experiment

    made = ensure_experiment(client, "kind-new", tmp_path)
    assert client.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    older = client.create_experiment("kind-old", artifact_location=(tmp_path / "a").as_uri())
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(older).tags
    assert ensure_experiment(client, "kind-old", tmp_path) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_descriptions_fit_the_sql_column_however_many_metrics(client, store, params, policy_dir) -> None:
    """PostgreSQL stores a version's description in varchar(5000): registration and the promotion
    record stay within it with hundreds of metrics (baselines, breakdowns), cut at a line boundary."""
    from flows.registry import DESCRIPTION_CHARS, fit_description

    metrics = dict(METRICS) | {f"oracle/repaired/metric_{i:03d}": i / 1000 for i in range(300)}
    metrics |= {f"metric_{i:03d}": i / 1000 for i in range(400)}  # headline rows alone exceed the limit
    _register(client, store, params, policy_dir, metrics)
    version = client.get_model_version(params.registry.model_name, "1")
    assert len(version.description) <= DESCRIPTION_CHARS
    assert "oracle/repaired" not in version.description  # breakdowns stay on the run
    assert "more lines left out" in version.description
    promote(client, params.registry.model_name, "m_vIoU", 0.0, 0.02)
    described = client.get_model_version(params.registry.model_name, "1").description
    assert len(described) <= DESCRIPTION_CHARS and "## Promotion" in described
    text = "\n".join(f"line {i}" for i in range(100))
    cut = fit_description(text, 200)
    assert len(cut) <= 200 and cut.startswith("line 0\nline 1\n") and "more lines left out" in cut
    assert fit_description("short", 200) == "short"
