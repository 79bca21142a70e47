"""Multi-process training: the shipped accelerate configs, and a real 2-process CPU run of ``stvg train``.

The 2-process run goes through ``accelerate launch --multi_gpu --num_processes 2`` on CPU (the GRPO config
sets ``use_cpu`` without CUDA, so the ranks form a gloo process group; accelerate's own ``--cpu``
multi-process mode needs mpirun). It is a real DDP run, not a simulated non-main rank. This module is also
the rank script: run as ``__main__`` it spies on every filesystem write of the stage and the library,
trains, and records what this rank wrote and its in-memory weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO_ROOT / "configs" / "accelerate").glob("*.yaml"))
SAMPLING = {"native_fps": 10.0, "n_frames": 40, "frame_indices": [0, 10, 20, 30], "width": 56, "height": 56}
VIDEOS = ("v0", "v1", "v2", "v3")


# ---------------------------------------------------------------------------------- accelerate configs


def test_every_config_is_tested() -> None:
    assert {c.name for c in CONFIGS} == {"single_gpu.yaml", "zero3.yaml", "zero3_offload.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_loads_with_accelerate(path: Path) -> None:
    """accelerate's own loader (the one ``accelerate launch --config_file`` uses) rejects unknown keys
    and fills defaults; DeepSpeed configs go through ``DeepSpeedPlugin``, which needs no deepspeed."""
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import ComputeEnvironment, DistributedType

    cfg = load_config_from_file(str(path))
    assert isinstance(cfg, ClusterConfig)
    assert cfg.compute_environment == ComputeEnvironment.LOCAL_MACHINE
    assert cfg.num_machines == 1 and cfg.machine_rank == 0 and cfg.num_processes >= 1
    assert cfg.mixed_precision == "bf16" and cfg.use_cpu is False
    if path.stem == "single_gpu":
        assert cfg.distributed_type == DistributedType.NO and cfg.num_processes == 1
        return
    from accelerate.utils import DeepSpeedPlugin

    assert cfg.distributed_type == DistributedType.DEEPSPEED
    plugin = DeepSpeedPlugin(**cfg.deepspeed_config)  # TypeError on a key accelerate does not know
    zero = plugin.deepspeed_config["zero_optimization"]
    assert plugin.zero_stage == 3 and zero["stage"] == 3 and plugin.zero3_init_flag
    # Trainer.save_model gathers the ZeRO-3 shards into one 16-bit state dict only with this set;
    # without it the final model/ would hold a DeepSpeed checkpoint instead of loadable weights.
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    offload = "cpu" if path.stem == "zero3_offload" else "none"
    assert zero["offload_optimizer"]["device"] == offload and zero["offload_param"]["device"] == offload


# ---------------------------------------------------------------------------------- 2-process run


def test_save_on_each_node_is_refused(tmp_path: Path) -> None:
    """The final save broadcasts rank 0's folder; per-node writers would each swap in their own."""
    from stvg.config import TrainParams
    from stvg.training.train import grpo_config

    p = TrainParams(grpo={"save_on_each_node": True})
    with pytest.raises(ValueError, match="save_on_each_node"):
        grpo_config(p, tmp_path, [1.0], ["none"])


def _launch_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "ACCELERATE_"))}
    env.update(OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"))  # HF_HOME: no default accelerate config
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_process_training_writes_once_from_rank_0_and_saves_the_trained_weights(tmp_path: Path) -> None:
    rank0, rank1 = run_two_process_training(tmp_path)
    assert rank0["device"] == rank1["device"] == ("cuda" if _cuda() else "cpu")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_two_process_training(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``stvg train`` under ``accelerate launch`` with 2 processes (GPUs where present: the GRPO config
    picks CUDA when it is available), checked end to end; returns the two ranks' records."""
    # imported here: the launched workers run this file as a script, where `tests` is no package
    from stvg.stages import base_model as base_model_stage
    from stvg.training.policy import load_policy, weights_hash
    from tests.stages.test_train import tiny_grpo_params

    params = tiny_grpo_params(tmp_path, learning_rate=5e-2)
    base = tmp_path / "base"
    assert base_model_stage.main(["--params", str(params), "--out", str(base)]) == 0
    rows = [
        {
            "sample_id": f"s{i}",
            "video_id": v,
            "query": "The red square moves.",
            "start_s": 0.5,
            "end_s": 2.0,
            "target_id": 1,
            "duration_s": 4.0,
        }
        for i, v in enumerate(VIDEOS)
    ]
    labels = tmp_path / "train.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "train"
    stale = out / "checkpoints" / "checkpoint-9"
    stale.mkdir(parents=True)  # a fresh run must remove it, from rank 0 only
    records = tmp_path / "ranks"
    records.mkdir()

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--main_process_port", str(_free_port()), __file__, str(records)]
    cmd += ["--params", str(params), "--labels", str(labels), "--prompt-dir", str(tmp_path)]
    cmd += ["--base-model", str(base), "--out", str(out)]
    proc = subprocess.run(
        cmd, env=_launch_env(tmp_path), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    rank0, rank1 = (json.loads((records / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["rc"] == rank1["rc"] == 0 and rank0["global_step"] == rank1["global_step"] == 2
    # Only rank 0 touched the filesystem, each output once; rank 1 wrote nothing.
    assert rank1["writes"] == []
    assert sorted(rank0["writes"]) == sorted(
        [
            ["rmtree", str(out / "checkpoints")],
            ["write_json", str(out / "checkpoints" / "fingerprint.json")],  # what the checkpoints resume
            ["atomic_dir", str(out / "model")],
            ["write_json", str(out / "log_history.json")],
            ["write_json", str(out / "checkpoints" / "fingerprint.json")],  # the run finished
            ["plot_curves", str(out / "reward_curves.png")],
            ["write_json", str(out / "summary.json")],
        ]
    )
    assert not stale.exists() and (out / "checkpoints" / "checkpoint-2" / "optimizer.pt").is_file()
    assert (out / "checkpoints" / "checkpoint-2" / "rng_state_1.pth").is_file()  # both ranks trained
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints",
        "log_history.json",
        "model",
        "reward_curves.png",
        "summary.json",
    ]  # no leftover partial folders
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 2 and summary["n_samples"] == 4

    # The saved policy loads, has real weights, and equals what both (DDP-synchronised) ranks trained.
    model_dir = out / "model"
    assert (model_dir / "prompt_template.json").is_file() and not (model_dir / "training_args.bin").exists()
    model, _ = load_policy(model_dir)
    tensors = model.state_dict()
    assert tensors and all(t.numel() > 0 for t in tensors.values())
    assert all(t.abs().sum() > 0 for k, t in tensors.items() if k.endswith("proj.weight"))
    saved = weights_hash(model)
    assert saved == rank0["weights"] == rank1["weights"]
    assert saved != json.loads((base / "summary.json").read_text())["weights_sha256"]  # trained, not the base
    return rank0, rank1


def _rank_main(record_dir: Path, argv: list[str]) -> None:
    """One rank: the train stage with synthetic frames and a reward that varies, every write recorded."""
    import stvg.training.train as train_mod
    from stvg.stages import train as train_stage
    from stvg.training.policy import weights_hash
    from stvg.training.rewards import completion_text

    writes: list[list[str]] = []
    trainers: list[Any] = []

    class FakeDB:
        def has(self, video_id: str) -> bool:
            return video_id in VIDEOS

        def key(self, video_id: str) -> str:  # the entry key the training fingerprint records
            return f"entry-{video_id}"

    def fake_loader(prompt_dir: Path) -> tuple[FakeDB, Any]:
        def load(video_id: str) -> tuple[np.ndarray, dict[str, Any]]:
            rng = np.random.default_rng(int(video_id[1:]))
            return rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8), dict(SAMPLING)

        return FakeDB(), load

    def varied_reward(completions: list[Any], **kwargs: Any) -> list[float]:
        # Random-weight completions never parse; a varying reward gives GRPO a gradient.
        return [float(len(completion_text(c)) % 5) for c in completions]

    def spy(name: str, fn: Any, arg: int = 0) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            writes.append([name, str(a[arg])])
            return fn(*a, **kw)

        return wrapper

    def capture(**kw: Any) -> Any:
        trainers.append(build_trainer(**kw))
        return trainers[-1]

    build_trainer = train_mod.build_trainer
    train_stage._frame_loader = fake_loader
    train_mod.build_reward_funcs = lambda weights, gate, **_: ([varied_reward], [1.0])
    train_mod.build_trainer = capture
    train_mod.write_json_atomic = spy("write_json", train_mod.write_json_atomic)
    train_mod.atomic_dir = spy("atomic_dir", train_mod.atomic_dir)
    train_mod.plot_curves = spy("plot_curves", train_mod.plot_curves, arg=1)
    train_stage.write_json_atomic = spy("write_json", train_stage.write_json_atomic)
    rmtree = train_mod.shutil.rmtree
    train_mod.shutil.rmtree = spy("rmtree", rmtree)  # the shutil module: restored before recording
    try:
        rc = train_stage.main(argv)
    finally:
        train_mod.shutil.rmtree = rmtree
    record = {
        "rc": rc,
        "writes": writes,
        "world_size": int(os.environ["WORLD_SIZE"]),
        "global_step": int(trainers[0].state.global_step),
        "weights": weights_hash(trainers[0].model),
        "device": next(trainers[0].model.parameters()).device.type,
    }
    (record_dir / f"rank{os.environ['RANK']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    from stvg.env import configure_environment

    configure_environment(REPO_ROOT)
    _rank_main(Path(sys.argv[1]), sys.argv[2:])
