"""Which checkpoint a training run resumes from, and what of TRL's log history is part of a version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stvg.training.train import latest_checkpoint, prepare_checkpoints, split_session_logs


def _checkpoint(root: Path, step: int, state: str | None = None) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w")
    if state is None:
        state = json.dumps({"global_step": step})
    (folder / "trainer_state.json").write_text(state)
    return folder


def test_a_checkpoint_killed_while_saving_is_not_complete(tmp_path: Path) -> None:
    good = _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 3, state='{"global_st')  # truncated: the kill came mid-write
    (tmp_path / "checkpoint-4").mkdir()  # nothing written yet
    assert latest_checkpoint(tmp_path) == good


def test_checkpoints_of_the_same_inputs_are_resumed_and_others_cleared(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    assert prepare_checkpoints(ckpt, "inputs-a", resume=False) is None  # fresh: stamped, nothing to resume
    second = _checkpoint(ckpt, 2)
    assert prepare_checkpoints(ckpt, "inputs-a", resume=False) == second  # killed run, same inputs
    assert prepare_checkpoints(ckpt, "inputs-b", resume=False) is None  # changed params/data/code
    assert not list(ckpt.glob("checkpoint-*"))
    assert json.loads((ckpt / "fingerprint.json").read_text()) == {"fingerprint": "inputs-b"}


def test_a_finished_run_is_not_resumed_by_a_rerun_of_the_same_inputs(tmp_path: Path) -> None:
    """``dvc repro -f train`` after a complete run trains from the start (the same bytes), not past it."""
    from stvg.training.train import _stamp

    ckpt = tmp_path / "checkpoints"
    prepare_checkpoints(ckpt, "inputs-a", resume=False)
    last = _checkpoint(ckpt, 4)
    _stamp(ckpt, "inputs-a", finished=True)
    assert prepare_checkpoints(ckpt, "inputs-a", resume=True) == last  # --resume may continue it
    _stamp(ckpt, "inputs-a", finished=True)
    assert prepare_checkpoints(ckpt, "inputs-a", resume=False) is None
    assert not list(ckpt.glob("checkpoint-*"))
    assert json.loads((ckpt / "fingerprint.json").read_text()) == {"fingerprint": "inputs-a"}


def test_explicit_resume_takes_the_latest_checkpoint_whatever_its_inputs(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    prepare_checkpoints(ckpt, "inputs-a", resume=False)
    second = _checkpoint(ckpt, 2)
    assert prepare_checkpoints(ckpt, "inputs-more-steps", resume=True) == second
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        prepare_checkpoints(tmp_path / "none", "x", resume=True)


def test_session_facts_leave_the_history_and_are_summarised() -> None:
    history = [
        {"step": 1, "epoch": 0.5, "loss": 0.1, "reward": 1.0, "step_time": 2.0},
        {"step": 2, "epoch": 1.0, "loss": 0.2, "reward": 0.5, "step_time": 4.0},
        {
            "step": 2,
            "epoch": 1.0,
            "train_runtime": 6.5,
            "train_samples_per_second": 1.2,
            "train_steps_per_second": 0.3,
            "train_loss": 0.15,
            "total_flos": 10.0,
        },
    ]
    kept, timings = split_session_logs(history)
    assert kept == [
        {"step": 1, "epoch": 0.5, "loss": 0.1, "reward": 1.0},
        {"step": 2, "epoch": 1.0, "loss": 0.2, "reward": 0.5},
        {"step": 2, "epoch": 1.0, "total_flos": 10.0},
    ]
    assert timings == {"train_s": 6.5, "mean_step_s": 3.0}
