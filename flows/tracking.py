"""MLflow bookkeeping for the flows: one parent run per pipeline execution, one nested run per stage.

Only ``MlflowClient`` calls with explicit run ids are used (no fluent ``mlflow.start_run`` state), so
tasks on any thread log to the right run, and the same code works against the local store and an
MLflow server. The store is ``sqlite:///<root>/mlflow/mlflow.db`` with artifacts under
``<root>/mlflow/artifacts`` unless ``MLFLOW_TRACKING_URI`` names another one. The artifact location
is set explicitly on the experiment: with a sqlite backend and none given, MLflow writes to a
CWD-relative ``./mlruns``.

What a run records: flattened params.yaml (``stvg.config.flatten``), the git commit, package versions,
the raw-data version (``raw_data_version``: the md5 that ``data.dvc`` pins), check reports and stage
summaries as JSON artifacts. Stage code receives ``MLFLOW_TRACKING_URI`` / ``MLFLOW_RUN_ID`` through
``stage_env`` so trainers can stream curves into the stage run without importing mlflow themselves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

from flows import artifacts
from stvg.config import Params, flatten, params_to_dict

PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # what MLflow 3's UI opens an experiment as
EXPERIMENT_KIND = "custom_model_development"  # model training (the other kind is genai_development)
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH_SIZE = 100  # MLflow's limit on params per log_batch call
VERSION_PACKAGES = (
    "stvg",
    "torch",
    "torchvision",
    "transformers",
    "trl",
    "ultralytics",
    "sam2",
    "prefect",
    "mlflow",
    "dvc",
    "great-expectations",
    "numpy",
    "pandas",
)


def tracking_uri(root: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else the project's local sqlite store."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow' / 'mlflow.db'}"
    )


def local_artifact_root(root: Path) -> Path:
    """Where the local store keeps artifacts."""
    return Path(root).resolve() / "mlflow" / "artifacts"


def get_client(root: Path) -> MlflowClient:
    """A client on ``tracking_uri(root)`` (the local store's folder is created on demand)."""
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client: MlflowClient, name: str, root: Path) -> str:
    """The id of experiment ``name``, created on first use (artifacts under mlflow/artifacts locally).

    The experiment is marked as model training (``EXPERIMENT_KIND``), which MLflow 3's UI reads to
    open it on runs and models instead of its GenAI traces view; an experiment made without the mark
    gets it here.
    """
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(existing.experiment_id)
    artifact_location = None
    if client.tracking_uri.startswith(("sqlite:", "file:")) or "://" not in client.tracking_uri:
        location = local_artifact_root(root) / name
        location.mkdir(parents=True, exist_ok=True)
        artifact_location = location.as_uri()
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
    return str(client.create_experiment(name, artifact_location=artifact_location, tags=tags))


def start_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Create a run (nested under ``parent_run_id`` when given) and return its id."""
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    return str(run.info.run_id)


def end_run(client: MlflowClient, run_id: str, *, failed: bool = False) -> None:
    """Close a run as FINISHED, or FAILED."""
    status = RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED)
    client.set_terminated(run_id, status=status)


def log_params(client: MlflowClient, run_id: str, params: Params) -> None:
    """All of params.yaml as flattened dotted keys (lists as JSON), in batches."""
    flat = flatten(params_to_dict(params))
    items = [Param(key, _param_value(value)) for key, value in sorted(flat.items())]
    for i in range(0, len(items), BATCH_SIZE):
        client.log_batch(run_id, params=items[i : i + BATCH_SIZE])


def log_tags(client: MlflowClient, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set several tags at once."""
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def metric_name(name: str) -> str:
    """A metric name MLflow accepts: ``vIoU@0.3`` -> ``vIoU_at_0.3`` (other bad characters -> ``_``)."""
    return re.sub(r"[^\w\-. :/]", "_", name.replace("@", "_at_"))


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], *, prefix: str = "") -> None:
    """Log numeric values (non-numbers are skipped) with an optional ``<stage>/`` prefix."""
    now = int(time.time() * 1000)
    items = [
        Metric(metric_name(f"{prefix}{k}"), float(v), now, 0)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    for i in range(0, len(items), BATCH_SIZE):
        client.log_batch(run_id, metrics=items[i : i + BATCH_SIZE])


def log_lineage(client: MlflowClient, run_id: str, root: Path, *, raw_data_version: str | None) -> None:
    """Git commit (+ dirty flag), package versions and the raw-data version, as tags."""
    tags: dict[str, str] = {"git_commit": git_commit(root), "git_dirty": str(git_dirty(root)).lower()}
    tags.update({f"version.{name}": version for name, version in package_versions().items()})
    if raw_data_version:
        tags["raw_data_version"] = raw_data_version
    log_tags(client, run_id, tags)
    if raw_data_version:
        client.log_param(run_id, "raw_data_version", raw_data_version)


def log_json_artifact(
    client: MlflowClient, run_id: str, obj: Any, name: str, artifact_path: str | None = None
) -> None:
    """Write ``obj`` as ``<name>`` (JSON) into the run's artifacts (under ``artifact_path``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        artifacts.upload(client, run_id, path, artifact_path)


def log_file_artifact(
    client: MlflowClient, run_id: str, path: Path, artifact_path: str | None = None
) -> None:
    """Copy a file (or a folder's files) into the run's artifacts when it exists (e.g. a stage's
    summary.json); best effort when MLflow's artifact store is down (``flows.artifacts``)."""
    if Path(path).exists():
        artifacts.upload(client, run_id, Path(path), artifact_path)


def stage_env(client: MlflowClient, run_id: str) -> dict[str, str]:
    """Environment for a stage subprocess so its own tooling (e.g. transformers' MLflowCallback) logs here."""
    return {"MLFLOW_TRACKING_URI": client.tracking_uri, "MLFLOW_RUN_ID": run_id}


def package_versions(names: Iterable[str] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide results ("missing" when not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def git_commit(root: Path) -> str:
    """HEAD of the repository at ``root`` ("unknown" outside git)."""
    return _git(root, "rev-parse", "HEAD") or "unknown"


def git_dirty(root: Path) -> bool:
    """Whether tracked files differ from HEAD (the commit alone then does not reproduce the code)."""
    return bool(_git(root, "status", "--porcelain", "--untracked-files=no"))


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM_CHARS]
