"""The train gate passes a complete GRPO run and names the step or the folder behind each defect."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stvg.checks.train import check_train

TEMPLATE = {"question_template": "Find: {query}"}


def _history(n: int = 4, steps_per_epoch: int = 4) -> list[dict]:
    rows = [
        {"step": s, "epoch": s / steps_per_epoch, "loss": 0.01 * s, "reward": 0.1 * s, "kl": 0.0}
        for s in range(1, n + 1)
    ]
    return [*rows, {"step": n, "epoch": n / steps_per_epoch, "train_loss": 0.02, "train_runtime": 1.0}]


def _run(tmp_path: Path, history: list[dict] | None = None, global_step: int | None = 4) -> Path:
    out = tmp_path / "train"
    model = out / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    (model / "tokenizer_config.json").write_text("{}")
    (model / "tokenizer.json").write_text("{}")
    (model / "prompt_template.json").write_text(json.dumps(TEMPLATE))
    (out / "log_history.json").write_text(json.dumps(_history() if history is None else history))
    summary = {} if global_step is None else {"global_step": global_step}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def _columns(report) -> set[str]:
    return {f["column"] for f in report.failures}


def test_a_complete_run_passes_by_steps_and_by_epochs(tmp_path: Path) -> None:
    out = _run(tmp_path)
    report = check_train(out, max_steps=4)
    assert report.success, report.message()
    assert report.statistics["evaluated_expectations"] == 9  # both tables' suites ran
    assert check_train(out, max_steps=-1, num_train_epochs=1.0).success


@pytest.mark.parametrize("key", ["loss", "reward"])
@pytest.mark.parametrize("value", [math.nan, math.inf, None])
def test_a_non_finite_logged_value_names_the_step(tmp_path: Path, key: str, value: float | None) -> None:
    history = _history()
    history[2][key] = value
    report = check_train(_run(tmp_path, history), max_steps=4)
    assert not report.success
    (failure,) = report.failures
    assert failure["suite"] == "train_log" and failure["column"] == "finite"
    assert failure["examples"] == ["step 3"]


def test_a_short_run_fails_on_steps_and_on_epochs(tmp_path: Path) -> None:
    out = _run(tmp_path, _history(n=3), global_step=3)
    report = check_train(out, max_steps=4)
    assert _columns(report) == {"global_step"} and "max_steps = 4" in report.message()
    report = check_train(out, max_steps=-1, num_train_epochs=1.0)
    assert _columns(report) == {"epoch"} and str(out) in report.message()


def test_the_step_count_falls_back_to_the_log_without_a_summary(tmp_path: Path) -> None:
    out = _run(tmp_path, global_step=None)
    assert check_train(out, max_steps=4).success
    assert _columns(check_train(out, max_steps=5)) == {"global_step"}


def test_repeated_steps_and_an_empty_log_fail(tmp_path: Path) -> None:
    history = _history()
    history.insert(2, dict(history[1]))  # a restart that logged step 2 again
    assert _columns(check_train(_run(tmp_path / "a", history), max_steps=4)) == {"step"}
    report = check_train(_run(tmp_path / "b", []), max_steps=4)
    assert any(f["expectation"] == "ExpectTableRowCountToBeBetween" for f in report.failures)


@pytest.mark.parametrize(
    ("name", "column"),
    [("config.json", "has_config"), ("model.safetensors", "has_weights"), ("tokenizer.json", "has_tokenizer"),
     ("prompt_template.json", "has_template")],
)  # fmt: skip
def test_a_missing_model_file_fails_naming_the_folder(tmp_path: Path, name: str, column: str) -> None:
    out = _run(tmp_path)
    (out / "model" / name).unlink()
    report = check_train(out, max_steps=4)
    (failure,) = report.failures
    assert failure["column"] == column and failure["examples"] == [str(out)]
