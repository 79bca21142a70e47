"""The base_model stage with a real checkpoint's value (a folder or a hub id): it refuses one that cannot
be loaded, before any other stage runs, and saves the template training will use for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stvg.stages import base_model as base_model_stage
from stvg.training import template


def _params(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"model": model}}))
    return path


def _run(tmp_path: Path, model: str) -> int:
    return base_model_stage.main(["--params", str(_params(tmp_path, model)), "--out", str(tmp_path / "out")])


@pytest.fixture
def empty_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    return cache


def test_a_missing_checkpoint_folder_fails_offline_naming_the_fix(
    tmp_path: Path, empty_offline_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "weights/Qwen2.5-VL-7B-Instruct"
    assert _run(tmp_path, missing) == 1
    message = capsys.readouterr().out
    assert repr(missing) in message and "HF_HUB_OFFLINE=1" in message and "hf download" in message
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_hub_id_in_the_cache_is_recorded_with_the_official_template(
    tmp_path: Path, empty_offline_cache: Path
) -> None:
    snapshot = empty_offline_cache / "models--Qwen--Qwen2.5-VL-7B-Instruct" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")

    assert _run(tmp_path, "Qwen/Qwen2.5-VL-7B-Instruct") == 0
    out = tmp_path / "out"
    assert json.loads((out / "source.json").read_text()) == {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "local": False,
    }
    assert template.load_template(out) == template.OFFICIAL_QUESTION_TEMPLATE


def test_a_local_checkpoint_keeps_the_template_training_reads_from_it(tmp_path: Path) -> None:
    bare, own = tmp_path / "bare", tmp_path / "own"
    for folder in (bare, own):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    template.save_template(own, "Trained with: {query}")

    for folder, expected in ((bare, template.OFFICIAL_QUESTION_TEMPLATE), (own, "Trained with: {query}")):
        run_dir = tmp_path / f"run-{folder.name}"
        run_dir.mkdir()
        assert _run(run_dir, str(folder)) == 0
        saved = template.load_template(run_dir / "out")
        assert saved == expected == template.load_template(folder)  # what stvg train reads for it


def test_a_folder_without_config_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ckpt").mkdir()
    assert _run(tmp_path, str(tmp_path / "ckpt")) == 1
    assert "has no config.json" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
