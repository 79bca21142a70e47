"""Per-stage quality gates and MLflow logging, plugged into ``flows.pipeline.STAGES``.

Each gate reads a stage's outputs under ``artifacts/<stage>/``, builds its table and runs the
great-expectations suite from ``stvg.checks``; gates never mutate anything. Each logger writes the
stage's numbers into its nested MLflow run with the stage name as metric prefix (``label/ceiling_m_vIoU``)
and attaches the pictures people look at: prompted-video previews, reward curves, metric plots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from flows import tracking
from stvg.checks.core import CheckReport
from stvg.config import Params
from stvg.io import read_jsonl

N_PREVIEWS = 3  # prompted videos attached to the prompt stage's run


def _artifacts(root: Path, stage: str) -> Path:
    return root / "artifacts" / stage


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _numbers(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)}


# ----------------------------------------------------------------------------------------------- detector


def check_detector(root: Path, params: Params) -> CheckReport:
    """weights.pt non-empty; a trained detector's mAP50 finite and above 0 (params set no bound)."""
    from stvg.checks.detector import check_detector as run_check

    return run_check(_artifacts(root, "detector"))


def log_detector(client: MlflowClient, run_id: str, root: Path, params: Params) -> None:
    """mAP and training time of the detector (trained on synthetic frames, or the given weights)."""
    metrics = _read_json(_artifacts(root, "detector") / "metrics.json")
    tracking.log_metrics(client, run_id, _numbers(metrics), prefix="detector/")


# ----------------------------------------------------------------------------------------------- prompt


def check_prompt(root: Path, params: Params) -> list[CheckReport]:
    """Every processed video has its table and render, IDs consecutive, boxes inside, bounded churn;
    and no more than ``prompt.max_failed_fraction`` of the videos failed (named with their cause)."""
    from stvg.checks.prompt import check_prompt as run_check
    from stvg.checks.prompt import check_prompt_failures
    from stvg.prompting.maskdb import MaskDB

    out = _artifacts(root, "prompt")
    summary = _read_json(out / "summary.json")
    return [
        check_prompt_failures(summary, params.prompt.max_failed_fraction),
        run_check(MaskDB(out), params.prompt),
    ]


def log_prompt(client: MlflowClient, run_id: str, root: Path, params: Params) -> None:
    """Prompting totals, failures and this run's speed, the run report, a few prompted videos and a contact sheet."""
    from stvg.prompting.maskdb import MaskDB
    from stvg.stages.prompt import run_report_path

    out = _artifacts(root, "prompt")
    summary = _read_json(out / "summary.json")
    report_path = run_report_path(out)
    report = _read_json(report_path)  # timings live outside the hashed database folder
    tracking.log_metrics(client, run_id, {**_numbers(summary), **_numbers(report)}, prefix="prompt/")
    tracking.log_file_artifact(client, run_id, report_path, "prompt")
    db = MaskDB(out)
    for video_id in db.video_ids()[:N_PREVIEWS]:
        path = db.prompted_video_path(video_id)
        if path.is_file():
            tracking.log_file_artifact(client, run_id, path, f"previews/{db.entry_dir(video_id).name}")
    if db.video_ids():
        _log_png(
            client,
            run_id,
            contact_sheet(db.sampled_frames(db.video_ids()[0])),
            "previews",
            "sampled_frames.png",
        )


def contact_sheet(frames: Any, columns: int = 4, max_frames: int = 8) -> Any:
    """A grid of the first sampled frames the policy sees (uint8 RGB)."""
    import numpy as np

    frames = np.asarray(frames)[:max_frames]
    if frames.size == 0:
        return np.zeros((1, 1, 3), np.uint8)
    n, h, w, _ = frames.shape
    rows = -(-n // columns)
    sheet = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = f
    return sheet


def _log_png(client: MlflowClient, run_id: str, image_rgb: Any, artifact_path: str, name: str) -> None:
    import tempfile

    import cv2

    with tempfile.TemporaryDirectory(prefix="stvg-png-") as tmp:
        path = Path(tmp) / name
        cv2.imwrite(str(path), image_rgb[..., ::-1])
        tracking.log_file_artifact(client, run_id, path, artifact_path)


# ----------------------------------------------------------------------------------------------- label


def check_label(root: Path, params: Params) -> CheckReport:
    """One row per kept label, target IDs in the mask DB, valid spans, bounded drop share.

    The target check is recomputed here from the prompt stage's mask database rather than trusted
    from the label stage's own ``target_in_db`` (computed from the same database it voted on).
    """
    from stvg.checks.labels import check_labels
    from stvg.prompting.maskdb import MaskDB

    out = _artifacts(root, "label")
    records = [*read_jsonl(out / "train.jsonl"), *read_jsonl(out / "test.jsonl")]
    splits = _read_json(out / "summary.json").get("splits", {})
    drops = {split: float(s.get("drop_fraction", 1.0)) for split, s in splits.items()}
    db = MaskDB(_artifacts(root, "prompt"))
    videos = sorted({str(r.get("video_id")) for r in records})
    instance_ids = {v: db.instance_ids(v) if db.has(v) else [] for v in videos}
    return check_labels(records, drops, params.label.max_drop_fraction, instance_ids)


def log_label(client: MlflowClient, run_id: str, root: Path, params: Params) -> None:
    """Label statistics and the prompting ceiling (``label/ceiling_m_vIoU``)."""
    out = _artifacts(root, "label")
    tracking.log_metrics(client, run_id, _numbers(_read_json(out / "metrics.json")), prefix="label/")
    tracking.log_file_artifact(client, run_id, out / "dropped.jsonl", "label")


# ----------------------------------------------------------------------------------------------- base_model


def check_base_model(root: Path, params: Params) -> CheckReport:
    """The starting policy is loadable: config, weights, tokenizer, prompt template, n_params > 0."""
    from stvg.checks.base_model import check_base_model as run_check

    return run_check(_artifacts(root, "base_model"))


# ----------------------------------------------------------------------------------------------- train


def check_train(root: Path, params: Params) -> CheckReport:
    """Finite loss/reward at every logged step, the configured length reached, model/ loadable."""
    from stvg.checks.train import HF_DEFAULT_EPOCHS
    from stvg.checks.train import check_train as run_check

    grpo = params.train.grpo
    return run_check(
        _artifacts(root, "train"),
        max_steps=int(grpo.get("max_steps", -1)),
        num_train_epochs=float(grpo.get("num_train_epochs", HF_DEFAULT_EPOCHS)),
    )


def log_train(client: MlflowClient, run_id: str, root: Path, params: Params) -> None:
    """Final training numbers and the reward curves (per-step metrics stream in from TRL itself)."""
    out = _artifacts(root, "train")
    summary = _read_json(out / "summary.json")
    tracking.log_metrics(client, run_id, _numbers(summary), prefix="train/")
    for name in ("reward_curves.png", "log_history.json"):
        tracking.log_file_artifact(client, run_id, out / name, "train")


# ----------------------------------------------------------------------------------------------- evaluate


def check_evaluate(root: Path, params: Params) -> CheckReport:
    """Every sample answered once per policy, scores in [0, 1], parse rate above the bound."""
    from stvg.checks.predictions import check_predictions

    out = _artifacts(root, "evaluate")
    records = read_jsonl(out / "predictions.jsonl")
    metrics = _read_json(out / "metrics.json")
    rates = {"policy": float(metrics.get("parse_rate", 0.0))}
    return check_predictions(
        records, rates, params.evaluate.min_parse_rate, params.evaluate.protocol != "st-align"
    )


def log_evaluate(client: MlflowClient, run_id: str, root: Path, params: Params) -> None:
    """Benchmark metrics of the policy and the baselines, predictions and plots."""
    out = _artifacts(root, "evaluate")
    tracking.log_metrics(client, run_id, _numbers(_read_json(out / "metrics.json")), prefix="evaluate/")
    tracking.log_file_artifact(client, run_id, out / "predictions.jsonl", "evaluate")
    tracking.log_file_artifact(client, run_id, out / "plots", "evaluate/plots")
