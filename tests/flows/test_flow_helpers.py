"""Fast checks of the flow helpers: DVC file parsing, stage planning, the retry rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from flows import dvc
from stvg.data.fetch import ChecksumError, DownloadError, UnsafeArchiveError


def test_dvc_file_hash_and_lock_hashes(tmp_path):
    (tmp_path / "data.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": "abc.dir", "path": "data", "size": 3}]})
    )
    assert dvc.dvc_file_hash(tmp_path / "data.dvc") == "abc.dir"
    lock = {
        "schema": "2.0",
        "stages": {
            "prompt": {"cmd": "x", "outs": [{"path": "artifacts/prompt", "md5": "p1.dir"}]},
            "label": {
                "cmd": "y",
                "outs": [{"path": "artifacts/label/a.jsonl", "md5": "l1"}, {"path": "b", "md5": "l2"}],
            },
        },
    }
    assert dvc.lock_hashes(tmp_path) == {}  # before the first repro
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert dvc.lock_hashes(tmp_path) == {
        "prompt": {"artifacts/prompt": "p1.dir"},
        "label": {"artifacts/label/a.jsonl": "l1", "b": "l2"},
    }


def test_dvc_file_errors_say_what_to_run(tmp_path):
    with pytest.raises(dvc.DvcError, match="not found; run the download flow"):
        dvc.dvc_file_hash(tmp_path / "data.dvc")
    (tmp_path / "data.dvc").write_text("outs: []\n")
    with pytest.raises(dvc.DvcError, match="exactly one output"):
        dvc.dvc_file_hash(tmp_path / "data.dvc")
    (tmp_path / "dvc.lock").write_text("stages: [unclosed\n")
    with pytest.raises(dvc.DvcError, match="not valid YAML"):
        dvc.lock_hashes(tmp_path)


def test_pipeline_stages_in_file_order(tmp_path):
    assert dvc.pipeline_stages(tmp_path) == []
    (tmp_path / "dvc.yaml").write_text("stages:\n  prompt: {cmd: a}\n  label: {cmd: b}\n  train: {cmd: c}\n")
    assert dvc.pipeline_stages(tmp_path) == ["prompt", "label", "train"]


def test_failed_dvc_command_reports_the_stderr_tail(tmp_path):
    with pytest.raises(dvc.DvcError, match=r"`dvc repro nope` failed .*exit") as excinfo:
        dvc.repro("nope", cwd=tmp_path)
    assert "not inside of a DVC repository" in str(excinfo.value) or "dvc.yaml" in str(excinfo.value)


def test_stage_plan_orders_and_validates(tmp_path):
    from flows.pipeline import stage_plan

    (tmp_path / "dvc.yaml").write_text("stages:\n  prompt: {cmd: a}\n  label: {cmd: b}\n")
    assert stage_plan(tmp_path, None) == ["download", "prompt", "label"]
    assert stage_plan(tmp_path, ["label", "download"]) == ["download", "label"]
    with pytest.raises(ValueError, match="unknown stage.*trian.*download, prompt, label"):
        stage_plan(tmp_path, ["trian"])


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (DownloadError("truncated"), True),
        (ChecksumError("http://x", "a" * 64, "b" * 64), False),  # final: the same bytes come again
        (DownloadError("HTTP 404", retryable=False), False),
        (UnsafeArchiveError("../evil"), False),
        (FileNotFoundError("no local path"), False),
        (ConnectionResetError("reset"), True),
    ],
)
def test_only_transient_download_errors_are_retried(exc, retry):
    from flows.download import _retry_helps

    assert _retry_helps(None, None, SimpleNamespace(data=exc)) is retry


def test_the_policy_version_is_the_model_folder_hash_alone():
    from flows.registry import LineageError, policy_version

    first = {"train": {"artifacts/train/model": "aaa.dir", "artifacts/train/log_history.json": "b1"}}
    retrained = {"train": {"artifacts/train/model": "aaa.dir", "artifacts/train/log_history.json": "b2"}}
    changed = {"train": {"artifacts/train/model": "ccc.dir", "artifacts/train/log_history.json": "b1"}}
    assert policy_version(first) == policy_version(retrained) == "aaa.dir"  # same weights, same version
    assert policy_version(changed) == "ccc.dir"
    with pytest.raises(LineageError, match="model"):
        policy_version({"train": {"artifacts/train/log_history.json": "b1"}})


def test_every_stage_output_is_cached_so_dvc_checkout_can_restore_it():
    """A run killed after DVC deleted a stage's outputs loses only what DVC did not cache."""
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text(encoding="utf-8"))
    uncached = [
        (stage, next(iter(entry)))
        for stage, body in spec["stages"].items()
        for kind in ("outs", "metrics", "plots")
        for entry in body.get(kind, [])
        if isinstance(entry, dict) and next(iter(entry.values())).get("cache") is False
    ]
    assert uncached == []
