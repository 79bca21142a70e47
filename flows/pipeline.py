"""The pipeline flow: download + raw gate, then every dvc.yaml stage as repro -> gate -> log, in MLflow.

    python -m flows.pipeline [--params params.yaml] [--stages download prompt ...]   (= make run, stvg run)

One MLflow parent run per execution records the flattened params, the git commit, package versions,
the raw-data version (``raw_data_version`` = the md5 ``data.dvc`` pins) and the check reports; each
stage gets a nested run. The download step is the download flow (a Prefect subflow, with retries);
every other stage is ``dvc repro <stage>`` (a no-op when nothing changed: DVC does the caching), then
its great-expectations gate, then its MLflow logging. Stages plug in through ``STAGES``: an entry
names the dvc.yaml stage, its check and its logger; a dvc.yaml stage without an entry is reproduced
and logged with its ``dvc.lock`` output hashes only. A failed stage or gate marks the stage run and
the parent run FAILED and raises ``PipelineFailed`` naming the stage, the check and the offending
items. Prefect state lives under ``.prefect/`` (see flows/__init__.py). A run killed outright (SIGKILL)
cannot close its runs; the next pipeline does (``flows.reconcile``: FAILED / CRASHED with a note).

After a successful run, data, stage outputs and the run cache are pushed to the DVC remote
(``flows/remote.py``; "NOT pushed" and why, when the store is down). Registration and promotion hold the
model's registration slot on a shared Prefect server (``flows/registry_lock.py``), so concurrent
pipelines from several clones register and decide one at a time. A tracking server that stops
answering fails the flow naming it, and its open runs are closed by the next run (``flows/outage.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.runtime import flow_run

from flows import artifacts, dvc, hooks, outage, reconcile, remote, tracking
from flows.download import DownloadResult, download_flow
from flows.registry_lock import registry_lock
from stvg.checks.core import CheckFailed, CheckReport, merge_reports
from stvg.config import Params, RegistryParams, load_params

DOWNLOAD = "download"

CheckFn = Callable[[Path, Params], CheckReport | Sequence[CheckReport]]
LogFn = Callable[[MlflowClient, str, Path, Params], None]


@dataclass(frozen=True)
class PipelineStage:
    """How the flow gates and logs one dvc.yaml stage (same name everywhere: dvc, params, artifacts/)."""

    name: str
    check: CheckFn | None = None  # reads the stage's outputs under root, returns report(s); never mutates
    log: LogFn | None = None  # logs metrics/artifacts into the stage's MLflow run


# The stages with a gate and/or their own logging, keyed by dvc.yaml stage name.
STAGES: list[PipelineStage] = [
    PipelineStage("base_model", hooks.check_base_model, None),
    PipelineStage("detector", hooks.check_detector, hooks.log_detector),
    PipelineStage("prompt", hooks.check_prompt, hooks.log_prompt),
    PipelineStage("label", hooks.check_label, hooks.log_label),
    PipelineStage("train", hooks.check_train, hooks.log_train),
    PipelineStage("evaluate", hooks.check_evaluate, hooks.log_evaluate),
]
POLICY_VERSION_TAG = "policy_data_version"  # dvc.lock hash of the model folder (registry.policy_version)
REGISTER = "register"  # the closing step after `evaluate`: register the policy, then the promotion gate


@dataclass(frozen=True)
class PipelineResult:
    """Where to look after a run."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    raw_data_version: str
    stages: list[str] = field(default_factory=list)
    model_version: str = ""  # registered version of `registry.model_name` (empty when not registered)
    promotion: str = ""  # the gate's decision, with the metrics side by side
    model_name: str = RegistryParams().model_name  # `registry.model_name`: the lineage hint names it
    data_push: str = ""  # where `dvc push` put the data and outputs, or why it did not
    artifacts_missing: list[str] = field(default_factory=list)  # uploads MLflow's artifact store refused


class PipelineFailed(RuntimeError):
    """A stage or its gate failed; carries the stage name, the MLflow run and (for gates) the report."""

    def __init__(
        self, stage: str, run_id: str, cause: BaseException, report: CheckReport | None = None
    ) -> None:
        super().__init__(f"pipeline stopped at stage `{stage}` (MLflow run {run_id}): {cause}")
        self.stage, self.run_id, self.report = stage, run_id, report


def stage_plan(root: Path, selected: Sequence[str] | None) -> list[str]:
    """Stages to run, in order: download, then dvc.yaml's stages; ``selected`` filters by name."""
    available = [DOWNLOAD, *dvc.pipeline_stages(root)]
    if not selected:
        return available
    unknown = sorted(set(selected) - set(available))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; this pipeline has: {', '.join(available)}")
    return [s for s in available if s in selected]


@task(name="repro", task_run_name="repro-{stage}", cache_policy=NO_CACHE)
def repro_task(stage: str, root: Path, env: dict[str, str]) -> str:
    """``dvc repro <stage>`` with the MLflow stage run in the environment."""
    return dvc.repro(stage, cwd=root, env=env)


@task(name="gate", task_run_name="gate-{stage}", cache_policy=NO_CACHE)
def gate_task(stage: str, check: CheckFn, root: Path, params: Params) -> CheckReport:
    """Run the stage's great-expectations check; returns the (possibly failed) report."""
    result = check(root, params)
    reports = [result] if isinstance(result, CheckReport) else list(result)
    report = reports[0] if len(reports) == 1 else merge_reports(stage, reports)
    get_run_logger().info(report.message())
    return report


@flow(name="pipeline")
def pipeline_flow(params_path: str = "params.yaml", stages: list[str] | None = None) -> PipelineResult:
    """Run the pipeline on the repository holding ``params_path``; one MLflow parent run per call."""
    logger = get_run_logger()
    params_file = Path(params_path).resolve()
    root = params_file.parent
    params = load_params(params_file)
    plan = stage_plan(root, stages)
    stage_hooks = {s.name: s for s in STAGES}

    client = tracking.get_client(root)
    experiment_id = tracking.ensure_experiment(client, params.registry.experiment, root)
    run_id = _start_pipeline_run(client, experiment_id, root, plan)

    current, stage_run, stage_runs = plan[0] if plan else DOWNLOAD, None, []
    raw_version, model_version, promotion, pushed = "", "", "", None
    try:
        tracking.log_params(client, run_id, params)
        tracking.log_lineage(client, run_id, root, raw_data_version=None)
        tracking.log_file_artifact(client, run_id, params_file, "inputs")
        for current in plan:
            stage_run = tracking.start_run(client, experiment_id, current, parent_run_id=run_id)
            stage_runs.append(stage_run)
            if current == DOWNLOAD:
                raw_version = _download_stage(client, (run_id, stage_run), params_file)
            else:
                _dvc_stage(client, (run_id, stage_run), root, params, current, stage_hooks.get(current))
            tracking.end_run(client, stage_run)
            stage_run = None
        raw_version = raw_version or _current_raw_version(root)
        if raw_version:
            tracking.log_lineage(client, run_id, root, raw_data_version=raw_version)
        _log_data_versions(client, run_id, root)
        if "evaluate" in plan:
            current = REGISTER
            with registry_lock(params.registry.model_name):
                model_version, promotion = _register(client, run_id, root, params)
        pushed = remote.push_after_run(client, run_id, root, model_version)
        logger.info("DVC remote: %s", pushed.line())
    except Exception as exc:
        report = exc.report if isinstance(exc, CheckFailed) else None
        try:
            _record_failure(client, run_id, stage_run, current, exc, report)
        except Exception:
            if outage.server_reachable(client.tracking_uri):
                raise
            outage.remember_unclosed(root, client.tracking_uri, [stage_run or "", run_id], current)
            down = outage.TrackingUnavailable(client.tracking_uri, run_id, exc)
            raise PipelineFailed(current, run_id, down, report) from exc
        raise PipelineFailed(current, run_id, exc, report) from exc
    tracking.end_run(client, run_id)
    result_out = PipelineResult(
        run_id,
        experiment_id,
        client.tracking_uri,
        raw_version,
        plan,
        model_version,
        promotion,
        params.registry.model_name,
        pushed.line() if pushed else "",
        [name for run in (run_id, *stage_runs) for name in artifacts.missing(run)],
    )
    logger.info("pipeline finished: MLflow run %s, raw-data version %s", run_id, raw_version or "-")
    return result_out


def _start_pipeline_run(client: MlflowClient, experiment_id: str, root: Path, plan: list[str]) -> str:
    """The pipeline's parent MLflow run, after closing the runs a killed pipeline or an outage left open."""
    logger = get_run_logger()
    outage.close_unclosed(client, root)  # runs a tracking-server outage left open from this checkout
    run_id = tracking.start_run(
        client,
        experiment_id,
        f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            "stvg.stages": ",".join(plan),
            reconcile.FLOW_RUN_TAG: str(flow_run.get_id() or ""),
            **reconcile.owner_tags(),
        },
    )
    logger.info("MLflow run %s (%s)", run_id, client.tracking_uri)
    for stale in reconcile.reconcile_experiment(client, experiment_id, found_by=run_id):
        logger.warning("closed run %s, left RUNNING by a pipeline that was killed", stale)
    return run_id


def _log_check(client: MlflowClient, runs: tuple[str, str], report: CheckReport) -> None:
    """A gate's report goes to the pipeline run and to the stage's own run."""
    for target in runs:
        tracking.log_json_artifact(client, target, report.to_dict(), f"{report.name}.json", "checks")


def _download_stage(client: MlflowClient, runs: tuple[str, str], params_file: Path) -> str:
    """The download subflow (raw gate included); returns the raw-data version it registered."""
    result: DownloadResult = download_flow(params_path=str(params_file))
    for report in result.reports:
        _log_check(client, runs, report)
    tracking.log_json_artifact(client, runs[1], result.sources, "sources.json", "download")
    return result.raw_data_version


def _dvc_stage(
    client: MlflowClient,
    runs: tuple[str, str],
    root: Path,
    params: Params,
    name: str,
    hook: PipelineStage | None,
) -> None:
    """One DVC stage: repro, log its outputs, then its gate (raising on failure) and its MLflow hook."""
    stage_run = runs[1]
    repro_task(name, root, tracking.stage_env(client, stage_run))
    _log_stage_outputs(client, stage_run, root, name)
    if hook and hook.check:
        report = gate_task(name, hook.check, root, params)
        _log_check(client, runs, report)
        report.raise_on_failure()
    if hook and hook.log:
        hook.log(client, stage_run, root, params)


def _record_failure(
    client: MlflowClient,
    run_id: str,
    stage_run: str | None,
    stage: str,
    exc: BaseException,
    report: CheckReport | None,
) -> None:
    """``failure.json``, the failed stage's tag, and both runs closed as FAILED."""
    failure = {"stage": stage, "error": str(exc), "check": report.to_dict() if report else None}
    if report is not None:
        tracking.log_json_artifact(client, run_id, report.to_dict(), f"{report.name}.json", "checks")
    tracking.log_json_artifact(client, run_id, failure, "failure.json")
    tracking.log_tags(client, run_id, {"stvg.failed_stage": stage})
    if stage_run:
        tracking.end_run(client, stage_run, failed=True)
    tracking.end_run(client, run_id, failed=True)


def _log_stage_outputs(client: MlflowClient, run_id: str, root: Path, stage: str) -> None:
    """The stage's dvc.lock output hashes (its data version), its summary.json when there is one, and
    its run facts (``artifacts/run_info/<stage>.json``: wall times as ``<stage>/..._s`` metrics, host)."""
    from stvg.runinfo import read_run_info, run_info_path

    hashes = dvc.lock_hashes(root).get(stage, {})
    if hashes:
        tracking.log_tags(client, run_id, {f"dvc.out.{path}": md5 for path, md5 in hashes.items()})
        tracking.log_json_artifact(client, run_id, hashes, "dvc_outs.json", stage)
    out = root / "artifacts" / stage
    tracking.log_file_artifact(client, run_id, out / "summary.json", stage)
    info = read_run_info(out, stage)
    if info:
        tracking.log_metrics(
            client, run_id, {k: v for k, v in info.items() if k.endswith("_s")}, prefix=f"{stage}/"
        )
        tracking.log_file_artifact(client, run_id, run_info_path(out, stage), stage)


def _log_data_versions(client: MlflowClient, run_id: str, root: Path) -> None:
    """The prompted-data and label-set versions (dvc.lock output hashes) as tags of the parent run."""
    from flows.registry import stage_version

    hashes = dvc.lock_hashes(root)
    names = {"prompt": "prompted_data_version", "label": "label_data_version"}
    tags = {tag: stage_version(hashes, stage) for stage, tag in names.items() if hashes.get(stage)}
    if tags:
        tracking.log_tags(client, run_id, tags)


def _register(client: MlflowClient, run_id: str, root: Path, params: Params) -> tuple[str, str]:
    """Register the trained policy (alias ``challenger``) and run the promotion gate against the champion.

    A policy already in the registry (the same model folder hash in dvc.lock: a no-op re-run, or a
    retraining that produced identical weights) is not registered again: the run is tagged with the
    existing version instead, and the text shows that version's metrics beside the champion's as a
    fresh registration would.
    """
    from flows.promote import register_and_promote
    from flows.registry import policy_version as version_of_policy

    name = params.registry.model_name
    policy_version = version_of_policy(dvc.lock_hashes(root))
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.tags.get(POLICY_VERSION_TAG) == policy_version:
            tracking.log_tags(
                client, run_id, {"registered_model": name, "registered_version": str(mv.version)}
            )
            held = f"{name} version {mv.version} already holds this policy"
            text = f"{held} ({POLICY_VERSION_TAG} {policy_version}); {_side_by_side(client, mv, params)}"
            _logger().info(text)
            return f"models:/{name}/{mv.version}", text
    version, decision = register_and_promote(client, run_id, root, params)
    client.set_model_version_tag(name, str(version.version), POLICY_VERSION_TAG, policy_version)
    tracking.log_tags(
        client,
        run_id,
        {
            "registered_model": name,
            "registered_version": str(version.version),
            "promoted": str(decision.promote),
        },
    )
    verdict = "promoted to champion" if decision.promote else "stays challenger"
    text = f"{name} version {version.version}: {verdict} ({decision.reason})\n{decision.table()}"
    _logger().info(text)
    return f"models:/{name}/{version.version}", text


def _side_by_side(client: MlflowClient, version: ModelVersion, params: Params) -> str:
    """Where an already registered version stands, and its metrics beside the current champion's."""
    from flows.registry import CHAMPION, version_by_alias, version_metrics
    from stvg.registry_gate import GateError, decide_promotion

    r = params.registry
    champion = version_by_alias(client, r.model_name, CHAMPION)
    champion_metrics = None if champion is None else version_metrics(client, champion)
    if champion is None:
        where = "there is no champion"
    elif str(champion.version) == str(version.version):
        where = "it is the champion"
    else:
        where = f"the champion is version {champion.version}"
    try:
        decision = decide_promotion(
            version_metrics(client, version),
            champion_metrics,
            r.primary_metric,
            r.margin,
            r.tolerance,
            r.gate_metrics,
        )
    except GateError as exc:  # metrics missing on one side: say so instead of failing a no-op re-run
        return f"{where}; metrics not comparable: {exc}"
    return f"{where}\n{decision.table()}"


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run logger inside a flow run, else this module's (``_register`` called directly)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _current_raw_version(root: Path) -> str:
    data_dvc = root / "data.dvc"
    return dvc.dvc_file_hash(data_dvc) if data_dvc.is_file() else ""


def next_steps(result: PipelineResult) -> list[str]:
    """What to look at after a run."""
    return [
        f"pipeline finished: stages {', '.join(result.stages) or '(none)'}",
        f"  MLflow run:        {result.run_id} (experiment {result.experiment_id}, {result.tracking_uri})",
        f"  raw-data version:  {result.raw_data_version or '(no data.dvc)'}",
        *(
            [f"  registered model:  {result.model_version}", "", result.promotion, ""]
            if result.model_version
            else []
        ),
        *([f"  DVC remote:        {result.data_push}"] if result.data_push else []),
        *_missing_artifact_lines(result.artifacts_missing),
        f"  lineage:           stvg lineage models:/{result.model_name}@champion",
        '  ground a video:    stvg ground VIDEO "QUERY"   (serve it: stvg serve -> http://127.0.0.1:8000)',
        *_ui_lines(result.tracking_uri),
    ]


def _missing_artifact_lines(missing: list[str]) -> list[str]:
    if not missing:
        return []
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    why = f"the server's artifact store failed; runs tagged {artifacts.INCOMPLETE_TAG}"
    return [f"  MLflow artifacts:  {len(missing)} NOT uploaded ({why}): {shown}"]


def _ui_lines(tracking_uri: str) -> list[str]:
    """Where the UIs are: the team services' servers when in use, else how to open the local ones."""
    prefect_api = os.environ.get("PREFECT_API_URL", "")
    return [
        f"  MLflow UI:         {tracking_uri}"
        if tracking_uri.startswith("http")
        else "  MLflow UI:         make mlflow-ui       -> http://127.0.0.1:5000",
        f"  Prefect UI:        {prefect_api.removesuffix('/api')}"
        if prefect_api
        else "  Prefect UI:        make prefect-server  -> http://127.0.0.1:4200",
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.pipeline`` / ``stvg run``: run the flow, print where to look next."""
    parser = argparse.ArgumentParser(prog="stvg run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file at the repository root")
    parser.add_argument("--stages", nargs="+", default=None, metavar="STAGE", help="only these stages")
    args = parser.parse_args(argv)
    try:
        result = pipeline_flow(params_path=args.params, stages=args.stages)
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure the same way
        print(f"\n{exc}", file=sys.stderr)
        return 1
    print("\n".join(next_steps(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
