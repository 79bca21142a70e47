"""base_model and train stages on tmp_path: determinism, outputs, rewards logged, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stvg.stages import base_model as base_model_stage
from stvg.stages import train as train_stage

pytestmark = pytest.mark.slow

SAMPLING = {
    "native_fps": 10.0,
    "n_frames": 40,
    "frame_indices": [0, 10, 20, 30],
    "width": 56,
    "height": 56,
    "fps": 1.0,
}


class _FakeDB:
    """Stands in for the mask database: synthetic prompted frames for v0..v2."""

    def has(self, video_id: str) -> bool:
        return video_id in {"v0", "v1", "v2"}


def _fake_loader(prompt_dir: Path):
    def load(video_id: str) -> tuple[np.ndarray, dict]:
        rng = np.random.default_rng(int(video_id[1:]))
        return rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8), dict(SAMPLING)

    return _FakeDB(), load


def tiny_grpo_params(tmp_path: Path, **grpo: object) -> Path:
    """params.yaml for the tiny policy and a 2-step GRPO run (``grpo`` overrides the block)."""
    block = {
        "num_generations": 2,
        "per_device_train_batch_size": 2,
        "max_completion_length": 6,
        "max_steps": 2,
        "save_steps": 1,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "beta": 0.04,
        "bf16": False,
        **grpo,
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"model": "tiny", "grpo": block}}))
    return path


def _labels(tmp_path: Path) -> Path:
    rows = [
        {
            "sample_id": f"s{i}",
            "video_id": f"v{i}",
            "query": "The red square moves.",
            "start_s": 0.5,
            "end_s": 2.0,
            "target_id": 1,
            "duration_s": 4.0,
            "vote_share": 1.0,
        }
        for i in range(4)  # v3 is not in the database: skipped with a warning
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_base_model_is_deterministic_by_seed(tmp_path: Path) -> None:
    params = tiny_grpo_params(tmp_path)
    assert base_model_stage.main(["--params", str(params), "--out", str(tmp_path / "a")]) == 0
    assert base_model_stage.main(["--params", str(params), "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["weights_sha256"] == b["weights_sha256"]
    assert (tmp_path / "a" / "config.json").is_file() and (tmp_path / "a" / "prompt_template.json").is_file()


def test_train_logs_rewards_saves_policy_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_stage, "_frame_loader", _fake_loader)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    base = tmp_path / "base"
    params = tiny_grpo_params(tmp_path)
    assert base_model_stage.main(["--params", str(params), "--out", str(base)]) == 0
    out = tmp_path / "train"
    argv = [
        "--labels",
        str(_labels(tmp_path)),
        "--prompt-dir",
        str(tmp_path),
        "--base-model",
        str(base),
        "--out",
        str(out),
    ]
    assert train_stage.main(["--params", str(params), *argv]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 2 and summary["n_samples"] == 3 and summary["skipped_videos"] == ["v3"]
    assert summary["report_to"] == ["none"]
    history = json.loads((out / "log_history.json").read_text())
    step_logs = [h for h in history if "reward" in h]
    assert len(step_logs) == 2
    for key in (
        "rewards/format_reward/mean",
        "rewards/tiou_reward/std",
        "rewards/object_reward/mean",
        "frac_reward_zero_std",
        "completions/mean_length",
        "kl",
    ):
        assert key in step_logs[0], key
    assert (out / "reward_curves.png").stat().st_size > 1000
    assert (out / "model" / "config.json").is_file() and (out / "model" / "prompt_template.json").is_file()
    assert not (out / "model" / "training_args.bin").exists()  # the policy folder holds the policy only
    assert not list(out.glob(".model.*")), "no partial folder left behind"
    ckpt2 = out / "checkpoints" / "checkpoint-2"
    assert (ckpt2 / "optimizer.pt").is_file(), "checkpoints must keep optimizer state"

    # Resume: one more step continues the count and the optimizer's state (AdamW step 2 -> 3).
    params3 = tiny_grpo_params(tmp_path, max_steps=3)
    assert train_stage.main(["--params", str(params3), *argv, "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 3 and summary["resumed_from"].endswith("checkpoint-2")
    opt2 = torch.load(ckpt2 / "optimizer.pt", weights_only=False)["state"]
    opt3 = torch.load(out / "checkpoints" / "checkpoint-3" / "optimizer.pt", weights_only=False)["state"]
    steps2 = {float(s["step"]) for s in opt2.values()}
    steps3 = {float(s["step"]) for s in opt3.values()}
    assert steps2 == {2.0} and steps3 == {3.0}
    history = json.loads((out / "log_history.json").read_text())
    assert [h["step"] for h in history if "reward" in h] == [1, 2, 3]


def test_train_without_checkpoint_refuses_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_stage, "_frame_loader", _fake_loader)
    base = tmp_path / "base"
    params = tiny_grpo_params(tmp_path)
    assert base_model_stage.main(["--params", str(params), "--out", str(base)]) == 0
    argv = ["--labels", str(_labels(tmp_path)), "--prompt-dir", str(tmp_path), "--base-model", str(base)]
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train_stage.main(["--params", str(params), *argv, "--out", str(tmp_path / "t"), "--resume"])
