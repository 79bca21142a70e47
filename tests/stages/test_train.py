"""base_model and train stages on tmp_path: determinism, outputs, rewards logged, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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

    def key(self, video_id: str) -> str | None:
        return f"key-{video_id}" if self.has(video_id) else None


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
    assert summary["weights_dtype"] == "float32"  # bf16 would be trained without an fp32 master copy
    run_info = json.loads((tmp_path / "run_info" / "train.json").read_text())
    assert run_info["report_to"] == ["none"] and run_info["resumed_from"] is None
    assert run_info["total_s"] > 0 and run_info["mean_step_s"] > 0  # wall times live here ...
    history = json.loads((out / "log_history.json").read_text())
    assert not [k for h in history for k in h if "time" in k or "per_second" in k]  # ... not in a version
    assert "seconds" not in summary
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
    run_info = json.loads((tmp_path / "run_info" / "train.json").read_text())
    assert summary["global_step"] == 3 and run_info["resumed_from"].endswith("checkpoint-2")
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


# ---------------------------------------------------------------------------------- kill and resume

DRIVER = """
import sys
sys.path.insert(0, {repo!r})
from stvg.env import configure_environment
configure_environment()
from stvg.stages import train as train_stage
from tests.stages.test_train import _fake_loader
train_stage._frame_loader = _fake_loader
raise SystemExit(train_stage.main(sys.argv[1:]))
"""


def _warm_params(tmp_path: Path) -> Path:
    """A policy that half knows the answer format, so rewards vary within a group and steps move it."""
    params = tiny_grpo_params(
        tmp_path, num_generations=4, per_device_train_batch_size=4, max_completion_length=64, max_steps=3
    )
    spec = yaml.safe_load(params.read_text())
    spec["train"]["tiny"] = {"format_steps": 60}
    params.write_text(yaml.safe_dump(spec))
    return params


def _wait_and_kill(proc: subprocess.Popen, done: Path) -> None:
    """SIGKILL the whole process group as soon as ``done`` exists (a complete checkpoint)."""
    deadline = time.monotonic() + 600
    while not done.is_file():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_dvc_repro_after_a_kill_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    repo_root = Path(__file__).resolve().parents[2]
    params = _warm_params(tmp_path)
    base = tmp_path / "base"
    assert base_model_stage.main(["--params", str(params), "--out", str(base)]) == 0
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=str(repo_root)))
    labels = _labels(tmp_path)
    args = f"--params {params} --labels {labels} --prompt-dir {tmp_path} --base-model {base}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}

    uninterrupted = tmp_path / "uninterrupted"
    cmd = [sys.executable, str(driver), *args.split(), "--out", str(uninterrupted)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)

    # The same command as a dvc.yaml stage, killed by SIGKILL once checkpoint-1 is complete.
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, env=env)
    stage = {"cmd": f"{sys.executable} {driver} {args} --out train", "outs": ["train/model"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    repro = [sys.executable, "-m", "dvc", "repro", "train"]
    proc = subprocess.Popen(
        repro, cwd=repo, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_and_kill(proc, repo / "train" / "checkpoints" / "checkpoint-1" / "trainer_state.json")
    assert not (repo / "train" / "model").exists()
    done = subprocess.run(repro, check=False, cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run_info = json.loads((repo / "run_info" / "train.json").read_text())
    assert Path(run_info["resumed_from"]).name == "checkpoint-1"  # it continued, it did not start over
    resumed = repo / "train"
    for name in ("model/model.safetensors", "log_history.json", "summary.json", "reward_curves.png"):
        assert (resumed / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    history = json.loads((resumed / "log_history.json").read_text())
    assert any(abs(h.get("loss", 0.0)) > 0 for h in history), "the steps must move the weights"


def test_a_run_refused_for_gpu_memory_is_one_line_and_writes_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal comes before any generation (injected: no GPU here; tests/gpu checks a real one)."""
    from stvg.training import train as training
    from stvg.training.memory import GpuMemoryError

    def refuse(model, args, max_fraction: float, sharded: bool) -> None:
        assert max_fraction == 0.9 and not sharded
        raise GpuMemoryError("train: policy 1.0 GiB = 1.0 GiB would stay on cuda:0 (a GPU) ...")

    monkeypatch.setattr(train_stage, "_frame_loader", _fake_loader)
    monkeypatch.setattr(training, "check_gpu_memory", refuse)
    base, out = tmp_path / "base", tmp_path / "t"
    params = tiny_grpo_params(tmp_path)
    assert base_model_stage.main(["--params", str(params), "--out", str(base)]) == 0
    argv = ["--labels", str(_labels(tmp_path)), "--prompt-dir", str(tmp_path), "--base-model", str(base)]
    assert train_stage.main(["--params", str(params), *argv, "--out", str(out)]) == 1
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stvg")]  # no bars
    assert said == ["stvg train: policy 1.0 GiB = 1.0 GiB would stay on cuda:0 (a GPU) ..."]
    assert not (out / "model").exists() and not (out / "summary.json").exists()
    assert not list(out.rglob("checkpoint-*")) and not (out / "log_history.json").exists()
