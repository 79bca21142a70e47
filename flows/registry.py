"""Register the trained model in the MLflow Model Registry with its lineage; the flow calls this last.

``register_model`` builds the grounding bundle (``stvg.grounding.bundle``: the ``save_pretrained``
policy, its processor and prompt template, the prompting configuration the policy was trained with
and the detector / SAM2 weights by content hash), logs it as the MLflow *pyfunc* of
``flows.serving`` (a raw video and a query in, the answered tube out, with a signature and a params
schema) under the pipeline's parent run, registers it as ``registry.model_name`` (``stvg-r1``),
writes the lineage as model-version tags (``raw_data_version``, ``prompted_data_version``,
``label_data_version``, ``git_commit``, ``params_hash``) plus the benchmark metrics (``metrics``,
JSON), and points the alias ``challenger`` at the new version. Promotion to ``champion`` is a
separate, gated step (``flows/promote.py``).

Only ``MlflowClient`` calls with explicit ids are used (no fluent run state), so this works the same
against the local sqlite store and an MLflow server (``MLFLOW_TRACKING_URI``). Why a pyfunc and not
``mlflow.transformers``: the latter cannot log Qwen2.5-VL with its video processor (ENVIRONMENT.md).
Loading the model needs this project installed (``pip install -e .``); the model's
``pip_requirements`` pin the third-party stack only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.models
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from flows import artifacts, dvc, tracking
from flows.serving import save_grounding_model
from stvg.config import Params, params_to_dict
from stvg.grounding.bundle import write_bundle

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
LINEAGE_KEYS = ("raw_data_version", "prompted_data_version", "label_data_version", "git_commit")
METRICS_TAG = "metrics"  # JSON {name: value}: exact names (MLflow keys may not contain "@")
MODEL_ARTIFACT_NAME = "policy"  # the logged model's name inside the run
LINEAGE_ARTIFACT_DIR = "lineage"  # run artifact folder holding dvc.lock / data.dvc / params.yaml
_REQUIREMENT_PACKAGES = (
    "mlflow", "torch", "torchvision", "transformers", "ultralytics", "numpy", "pandas", "opencv-python",
    "pycocotools", "lap", "scipy", "pyarrow",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------- lineage


class LineageError(RuntimeError):
    """The lineage cannot be read (no data.dvc, no dvc.lock entry, no git); the message says what to run."""


def read_lineage(root: Path, prompt_stage: str = "prompt", label_stage: str = "label") -> dict[str, str]:
    """Data and code versions of the workspace: data.dvc md5, prompt/label output hashes, git HEAD.

    A stage with one output contributes its dvc.lock md5 verbatim; with several, the md5 of its sorted
    ``path md5`` lines (so the version changes exactly when one of its outputs does).
    """
    try:
        hashes = dvc.lock_hashes(root)
    except dvc.DvcError as exc:
        raise LineageError(str(exc)) from exc
    if not hashes:
        raise LineageError(f"{root / 'dvc.lock'} not found or empty; run the pipeline (dvc repro) first")
    return {
        "raw_data_version": raw_data_version(root),
        "prompted_data_version": stage_version(hashes, prompt_stage),
        "label_data_version": stage_version(hashes, label_stage),
        "git_commit": tracking.git_commit(root),
        "git_dirty": str(tracking.git_dirty(root)).lower(),
    }


def raw_data_version(root: Path) -> str:
    """The md5 that ``data.dvc`` pins: the raw-data version."""
    try:
        return dvc.dvc_file_hash(root / "data.dvc")
    except dvc.DvcError as exc:
        raise LineageError(str(exc)) from exc


def stage_version(lock_hashes: Mapping[str, Mapping[str, str]], stage: str) -> str:
    """One version string for a stage's outputs, from ``flows.dvc.lock_hashes`` ({stage: {path: md5}})."""
    outs = lock_hashes.get(stage) or {}
    if not outs:
        raise LineageError(f"dvc.lock has no outputs for stage {stage!r}; run `dvc repro {stage}` first")
    if len(outs) == 1:
        return next(iter(outs.values()))
    text = "".join(f"{path} {md5}\n" for path, md5 in sorted(outs.items()))
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def policy_version(
    lock_hashes: Mapping[str, Mapping[str, str]], stage: str = "train", model_dir: str = "model"
) -> str:
    """The trained policy's version: the dvc.lock hash of the model folder the stage writes, alone.

    Not the whole stage's outputs: logs, curves and checkpoints do not change what is served, so a
    retrained policy with identical weights keeps its version and is not registered again.
    """
    outs = lock_hashes.get(stage) or {}
    found = [md5 for path, md5 in outs.items() if Path(path).name == model_dir]
    if len(found) != 1:
        raise LineageError(
            f"dvc.lock has no single `{model_dir}` output for stage {stage!r}; run `dvc repro {stage}` first"
        )
    return found[0]


def params_hash(params: Params | Mapping[str, Any]) -> str:
    """SHA-256 of the params as canonical JSON: equal params, equal hash, whatever the YAML layout."""
    plain = params_to_dict(params) if isinstance(params, Params) else dict(params)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------- the model


def pip_requirements() -> list[str]:
    """Exact pins of the installed third-party stack the model needs (explicit: inference is slow)."""
    pins = []
    for name in _REQUIREMENT_PACKAGES:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            log.warning("package %s not installed; left out of the model's pip requirements", name)
    return pins


# ----------------------------------------------------------------------------------------------- registry


def register_model(
    client: MlflowClient,
    run_id: str,
    model_dir: str | os.PathLike[str],
    params: Params,
    lineage: Mapping[str, str],
    metrics: Mapping[str, float],
    *,
    detector_weights: str | os.PathLike[str],
    lineage_files: Mapping[str, str | os.PathLike[str]] | None = None,
) -> ModelVersion:
    """Bundle ``model_dir`` with the prompting configuration, log it as the grounding pyfunc under run
    ``run_id``, register it, tag lineage, alias ``challenger``.

    ``detector_weights`` is the detector the prompt stage used (``artifacts/detector/weights.pt``);
    ``params`` give the prompting configuration and the grounding defaults. ``lineage`` must hold every
    key of ``LINEAGE_KEYS`` (see ``read_lineage``). ``lineage_files`` (name -> path, e.g. dvc.lock,
    data.dvc, params.yaml) are copied to the run's ``lineage/`` folder so ``stvg lineage`` can restore
    the exact pins even when they were never committed.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        raise FileNotFoundError(f"policy folder {model_dir} is missing or empty; run `dvc repro train` first")
    if not Path(detector_weights).is_file():
        raise FileNotFoundError(
            f"detector weights {detector_weights} not found; run `dvc repro detector` first"
        )
    missing = [k for k in LINEAGE_KEYS if not lineage.get(k)]
    if missing:
        raise LineageError(f"lineage lacks {missing}; build it with flows.registry.read_lineage(root)")
    name = params.registry.model_name
    run = client.get_run(run_id)

    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id,
        name=MODEL_ARTIFACT_NAME,
        source_run_id=run_id,
        tags={k: str(v) for k, v in lineage.items()},
    )
    try:
        _log_grounding_model(
            client, logged.model_id, run_id, model_dir, params, Path(detector_weights), lineage
        )
    except Exception:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    for key, value in metrics.items():
        client.log_metric(run_id, mlflow_metric_name(key), float(value), model_id=logged.model_id)
    for file_name, path in (lineage_files or {}).items():
        if Path(path).is_file():
            _log_file_as(client, run_id, Path(path), file_name)

    _ensure_registered_model(client, name)
    tags = {k: str(v) for k, v in lineage.items()}
    tags["params_hash"] = params_hash(params)
    tags[METRICS_TAG] = json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True)
    version = client.create_model_version(
        name,
        # The storage URI, not models:/<id>: the sqlite registry resolves that through the *global*
        # tracking URI (an MLflow TODO), which differs from this client's in tests and on servers.
        source=logged.artifact_location,
        run_id=run_id,
        tags=tags,
        description=_describe(lineage, metrics),
        model_id=logged.model_id,
    )
    client.set_registered_model_alias(name, CHALLENGER, str(version.version))
    log.info("registered %s version %s (alias %s) from run %s", name, version.version, CHALLENGER, run_id)
    return client.get_model_version(name, str(version.version))


def _log_grounding_model(
    client: MlflowClient,
    model_id: str,
    run_id: str,
    model_dir: Path,
    params: Params,
    detector_weights: Path,
    lineage: Mapping[str, str],
) -> None:
    """Bundle the policy with its prompting configuration and log it as the grounding pyfunc."""
    with tempfile.TemporaryDirectory(prefix="stvg-model-") as tmp:
        bundle = Path(tmp) / "bundle"
        write_bundle(bundle, model_dir, params, detector_weights)
        local = Path(tmp) / "model"
        save_grounding_model(
            local,
            bundle,
            params.ground,
            pip_requirements=pip_requirements(),
            mlflow_model=mlflow.models.Model(run_id=run_id, model_id=model_id),
            metadata={"stvg": {"lineage": dict(lineage)}},
        )
        try:
            client.log_model_artifacts(model_id, str(local))
        except Exception as exc:
            if artifacts.store_failure(client.tracking_uri):
                raise artifacts.ArtifactStoreUnavailable(
                    client.tracking_uri, "the policy's model", exc
                ) from exc
            raise


def open_client(root: Path) -> MlflowClient:
    """A client on ``MLFLOW_TRACKING_URI`` (a server) or, by default, the project's sqlite store."""
    return tracking.get_client(root)


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points to, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def version_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, float]:
    """The benchmark metrics of a version: its ``metrics`` tag, else its run's ``evaluate`` metrics."""
    if METRICS_TAG in version.tags:
        return {k: float(v) for k, v in json.loads(version.tags[METRICS_TAG]).items()}
    if not version.run_id:
        return {}
    run_metrics = client.get_run(version.run_id).data.metrics
    for prefix in ("evaluate.", "evaluate/"):
        scoped = {k[len(prefix) :]: v for k, v in run_metrics.items() if k.startswith(prefix)}
        if scoped:
            return scoped
    return dict(run_metrics)


mlflow_metric_name = tracking.metric_name


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(
            name, description="STVG-R1 policy (Qwen2.5-VL, GRPO); aliases: challenger -> champion"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _log_file_as(client: MlflowClient, run_id: str, path: Path, file_name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="stvg-lineage-") as tmp:
        staged = Path(tmp) / file_name
        staged.write_bytes(path.read_bytes())
        client.log_artifact(run_id, str(staged), LINEAGE_ARTIFACT_DIR)


DESCRIPTION_CHARS = 5000  # MLflow's model-version description column on SQL stores (varchar(5000))


def _describe(lineage: Mapping[str, str], metrics: Mapping[str, float]) -> str:
    """Lineage and the policy's headline metrics (keys without a ``/``: baselines and breakdowns such
    as ``oracle/…`` or ``repaired/…`` stay on the run), within the description limit."""
    lines = ["Lineage:", ""] + [f"- {k}: `{v}`" for k, v in lineage.items()]
    headline = {k: v for k, v in metrics.items() if "/" not in k}
    if headline:
        lines += ["", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {float(v):.4f} |" for k, v in sorted(headline.items())]
        lines += ["", "Every metric (baselines, breakdowns): the training run's metrics."]
    return fit_description("\n".join(lines), DESCRIPTION_CHARS // 2)  # half left for the promotion record


def fit_description(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """``text`` cut at a line boundary to ``limit`` characters, saying how many lines were left out.

    A longer description is refused by MLflow on PostgreSQL (and would fail the registration).
    """
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    used = 0
    for i, line in enumerate(lines):
        note = f"\n… {len(lines) - i} more lines left out (the full table: the run's metrics)"
        if used + len(line) + 1 + len(note) > limit:
            return ("\n".join(lines[:i]) + note)[:limit]
        used += len(line) + 1
    return text[:limit]  # not reached: the text is longer than the limit
