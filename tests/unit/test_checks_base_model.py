"""The base-model gate passes a built or referenced policy and names what a broken folder lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.checks.base_model import check_base_model

TEMPLATE = {"version": "stvg-r1-v1", "question_template": "Find: {query}", "answer_format": "..."}


def _model_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "tokenizer.json").write_text('{"model": {}}')


def _built(tmp_path: Path, n_params: object = 288992) -> Path:
    out = tmp_path / "base_model"
    _model_files(out)
    (out / "prompt_template.json").write_text(json.dumps(TEMPLATE))
    (out / "summary.json").write_text(json.dumps({"model": "tiny", "n_params": n_params}))
    return out


def _reference(tmp_path: Path, model: str, local: bool) -> Path:
    out = tmp_path / "base_model"
    out.mkdir()
    (out / "source.json").write_text(json.dumps({"model": model, "local": local}))
    (out / "prompt_template.json").write_text(json.dumps(TEMPLATE))
    (out / "summary.json").write_text(json.dumps({"model": model, "local": local}))
    return out


def test_a_built_model_passes(tmp_path: Path) -> None:
    report = check_base_model(_built(tmp_path))
    assert report.success, report.message()


@pytest.mark.parametrize(
    ("breakage", "column"),
    [
        (lambda out: (out / "config.json").unlink(), "has_config"),
        (lambda out: (out / "tokenizer.json").unlink(), "has_tokenizer"),
        (lambda out: (out / "model.safetensors").write_bytes(b""), "has_weights"),
        (lambda out: (out / "prompt_template.json").unlink(), "has_template"),
        (
            lambda out: (out / "prompt_template.json").write_text('{"question_template": "no slot"}'),
            "has_template",
        ),
        (lambda out: (out / "summary.json").write_text('{"n_params": 0}'), "n_params"),
        (lambda out: (out / "summary.json").unlink(), "n_params"),
    ],
    ids=[
        "no-config",
        "no-tokenizer",
        "empty-weights",
        "no-template",
        "template-without-query",
        "zero-params",
        "no-summary",
    ],
)
def test_a_broken_built_model_fails_naming_the_fact(tmp_path: Path, breakage, column: str) -> None:
    out = _built(tmp_path)
    breakage(out)
    report = check_base_model(out)
    assert not report.success
    assert column in {f["column"] for f in report.failures}, report.message()
    assert all(f["examples"] == [str(out)] for f in report.failures)


def test_a_local_reference_is_checked_where_it_points(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints" / "qwen"
    _model_files(checkpoint)
    out = _reference(tmp_path, str(checkpoint), local=True)
    assert check_base_model(out).success
    (checkpoint / "config.json").unlink()
    report = check_base_model(out)
    assert [f["column"] for f in report.failures] == ["has_config"]
    assert report.failures[0]["examples"] == [str(checkpoint)]


def test_a_hub_reference_needs_its_template(tmp_path: Path) -> None:
    out = _reference(tmp_path, "Qwen/Qwen2.5-VL-7B-Instruct", local=False)
    assert check_base_model(out).success
    (out / "prompt_template.json").unlink()
    report = check_base_model(out)
    assert [f["column"] for f in report.failures] == ["has_template"]


@pytest.mark.parametrize(("rate", "passes"), [(1.0, True), (0.5, True), (0.25, False)])
def test_a_warmed_up_tiny_model_must_answer_in_the_format(tmp_path: Path, rate: float, passes: bool) -> None:
    out = _built(tmp_path)
    summary = {"model": "tiny", "n_params": 288992, "format_steps": 150, "format_parse_rate": rate}
    (out / "summary.json").write_text(json.dumps(summary))
    report = check_base_model(out)
    assert report.success is passes
    if not passes:
        assert "format_steps" in report.message() or "format" in report.message()
