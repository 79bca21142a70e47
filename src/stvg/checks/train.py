"""The train gate: GRPO ran to its configured end with finite numbers, and saved a loadable policy.

Two tables. ``train_log``: one row per logged step of TRL's ``log_history`` (the rows with ``loss``
or ``reward``); a NaN or infinite loss/reward means the optimisation diverged while the trainer kept
going, and the saved policy is garbage that still evaluates. ``train_output``: one row for the
stage's folder; the step count must equal ``max_steps`` (or, when training runs by epochs, the last
logged epoch must reach ``num_train_epochs``), so a run cut short (a crash caught by a retry, a
dataloader that ran dry) is not registered as if complete, and ``model/`` must hold what the
evaluation loads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stvg.checks.core import CheckReport, Expect, merge_reports, run_suite
from stvg.checks.files import is_finite_number, model_folder_facts, number, read_json

LOG_HISTORY = "log_history.json"
SUMMARY = "summary.json"
MODEL = "model"
LOGGED_VALUES = ("loss", "reward")
HF_DEFAULT_EPOCHS = 3.0  # transformers.TrainingArguments.num_train_epochs when train.grpo does not set it
EPOCH_TOLERANCE = 1e-3  # the trainer's fractional epoch counter ends at num_train_epochs up to rounding


def read_log_history(out_dir: Path) -> list[dict[str, Any]]:
    """TRL's per-step logs as the stage saved them ([] when missing or not a list)."""
    try:
        rows = json.loads((Path(out_dir) / LOG_HISTORY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def log_table(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per logged step: the step, its loss and reward, and whether both are finite numbers."""
    rows = [
        {
            "row": f"step {r.get('step', '?')}",
            "step": number(r.get("step")),
            **{k: number(r.get(k)) for k in LOGGED_VALUES},
            "finite": all(is_finite_number(r.get(k)) for k in LOGGED_VALUES),
        }
        for r in history
        if any(k in r for k in LOGGED_VALUES)
    ]
    return pd.DataFrame(rows, columns=["row", "step", *LOGGED_VALUES, "finite"])


def log_expectations() -> list[Expect]:
    """The suite over the logged steps."""
    return [
        Expect("ExpectTableRowCountToBeBetween", {"min_value": 1}, "training logged at least one step"),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "finite", "value_set": [True]},
            "loss and reward are finite numbers at every logged step (NaN/inf = diverged)",
        ),
        Expect(
            "ExpectColumnValuesToBeIncreasing",
            {"column": "step", "strictly": True},
            "steps are logged once each, in order (a restarted run would repeat them)",
        ),
    ]


def output_table(out_dir: Path, history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row for the stage's folder: steps and epochs reached, and the saved policy's files."""
    out_dir = Path(out_dir)
    steps = [number(r.get("step")) for r in history if "step" in r]
    epochs = [number(r.get("epoch")) for r in history if "epoch" in r]
    # trainer.state.global_step as the stage recorded it; the last logged step when summary.json lacks it
    global_step = number(read_json(out_dir / SUMMARY).get("global_step"))
    if math.isnan(global_step) and steps:
        global_step = steps[-1]
    row = {
        "item": str(out_dir),
        "global_step": global_step,
        "epoch": epochs[-1] if epochs else math.nan,
        **model_folder_facts(out_dir / MODEL),
    }
    return pd.DataFrame([row])


def output_expectations(max_steps: int, num_train_epochs: float) -> list[Expect]:
    """The suite over the folder; ``max_steps`` <= 0 means training runs by ``num_train_epochs``."""
    true = {"value_set": [True]}
    if max_steps > 0:
        length = Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "global_step", "min_value": max_steps, "max_value": max_steps},
            f"training ran train.grpo.max_steps = {max_steps} steps",
        )
        column = "global_step"
    else:
        length = Expect(
            "ExpectColumnValuesToBeBetween",
            {
                "column": "epoch",
                "min_value": num_train_epochs - EPOCH_TOLERANCE,
                "max_value": num_train_epochs + EPOCH_TOLERANCE,
            },
            f"training ran train.grpo.num_train_epochs = {num_train_epochs:g} epochs",
        )
        column = "epoch"
    return [
        Expect("ExpectColumnValuesToNotBeNull", {"column": column}, f"the trainer recorded its `{column}`"),
        length,
        *[
            Expect("ExpectColumnValuesToBeInSet", {"column": c, **true}, f"{MODEL}/ {why}")
            for c, why in (
                ("has_config", "holds config.json"),
                ("has_weights", "holds non-empty weights"),
                ("has_tokenizer", "holds the tokenizer"),
                ("has_template", "holds prompt_template.json with a {query} slot"),
            )
        ],
    ]


def check_train(
    out_dir: Path, max_steps: int = -1, num_train_epochs: float = HF_DEFAULT_EPOCHS
) -> CheckReport:
    """Run both train suites on the stage's folder (``artifacts/train``); one merged report."""
    history = read_log_history(Path(out_dir))
    reports = [
        run_suite("train_log", log_table(history), log_expectations(), id_column="row"),
        run_suite(
            "train_output",
            output_table(Path(out_dir), history),
            output_expectations(max_steps, num_train_epochs),
            id_column="item",
        ),
    ]
    return merge_reports("train", reports)
