"""GRPO training of the policy on the labelled, prompted videos; the library side of ``stvg train``.

``train()`` reads top to bottom like open-r1's ``grpo.py``: seed -> config/checkpoint -> data -> model
-> trainer -> train -> save. ``train.grpo`` passes unchanged to TRL's ``GRPOConfig`` (TRL
validates it); only ``output_dir``, ``report_to``, ``reward_weights`` and ``seed`` are set here.

Departures from the official code (REFERENCE 7.2): checkpoints keep optimizer and scheduler state
(``save_only_model`` false) so a resumed run continues the step count and the optimizer exactly; the
ID match and tIoU are separate rewards (same total with equal weights); video goes through the model in
the loss pass too (``grpo.py``).

Multi-process runs (``accelerate launch``, DeepSpeed ZeRO-3): every rank runs ``train()``, but only the
process the Trainer saves from (``args.should_save``) touches the filesystem -- the checkpoint wipe of a
fresh run, the final model, ``log_history.json`` -- and the others wait for it. The final weights go
through ``Trainer.save_model``, a collective under ZeRO-3 that gathers the partitioned parameters
(``zero3_save_16bit_model`` in the accelerate config); a plain ``save_pretrained`` on one rank would
write its empty shards. ``TrainResult.is_main_process`` tells the caller whether to write its own files.

Interrupted runs: with a ``fingerprint`` (a hash of everything the run depends on, computed by the
stage) a fresh call resumes from the latest complete checkpoint when the checkpoints were written for
the same fingerprint, and starts over otherwise, so ``dvc repro train`` after a kill continues where it
stopped and ends with the same weights as an uninterrupted run (RNG, data order, optimizer and scheduler
state are restored from the checkpoint). ``log_history.json`` holds only what the run learned: step
times, throughput and the per-session mean loss go to ``TrainResult.timings`` instead.

Tracking without importing MLflow: when ``MLFLOW_RUN_ID`` or ``MLFLOW_TRACKING_URI`` is in the
environment, ``report_to=["mlflow"]`` and transformers' ``MLflowCallback`` re-attaches to the flow's run
(TRL logs per-reward mean/std, ``frac_reward_zero_std``, completion lengths, KL); otherwise ``"none"``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stvg.config import TrainParams
from stvg.io import atomic_dir, write_json_atomic
from stvg.runtime import require_one_gpu_per_process, require_triton_compiler
from stvg.training import template
from stvg.training.batching import batch_semantics
from stvg.training.grpo import FrameLoader, build_trainer, video_dataset
from stvg.training.memory import GIB, StaticMemory, check_fits, static_memory
from stvg.training.policy import disable_kv_cache, load_policy
from stvg.training.rewards import build_reward_funcs

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
MODEL_DIR = "model"
FINGERPRINT_FILE = "fingerprint.json"  # inside CHECKPOINT_DIR: what the checkpoints were trained on
_OWNED_KEYS = ("output_dir", "report_to", "reward_weights")
# Log keys that describe the session, not the model: wall times, throughput, and TRL/transformers'
# closing `train_loss`, a mean over the steps of *this* call (a resumed run averages fewer).
_SESSION_KEYS = ("step_time", "train_loss")
_SESSION_SUFFIXES = ("_runtime", "_per_second")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    global_step: int
    log_history: list[dict[str, Any]]
    resumed_from: str | None
    n_samples: int
    report_to: list[str]
    final_metrics: dict[str, float] = field(default_factory=dict)
    is_main_process: bool = True  # False on the other ranks of a multi-process run: they must not write
    batching: dict[str, Any] = field(default_factory=dict)  # training.batching.BatchSemantics of the run
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)  # session facts kept out of log_history
    weights_dtype: str = "float32"  # the trained weights' own precision (bfloat16: no fp32 master copy)


def report_targets(environ: dict[str, str] | None = None) -> list[str]:
    """``["mlflow"]`` when the flow passed an MLflow run/URI through the environment, else ``["none"]``."""
    env = os.environ if environ is None else environ
    return ["mlflow"] if env.get("MLFLOW_RUN_ID") or env.get("MLFLOW_TRACKING_URI") else ["none"]


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The highest-numbered complete ``checkpoint-N`` folder, if any.

    Complete: its ``trainer_state.json`` (the Trainer writes it last) parses and names step N; a run
    killed while saving leaves a folder without it, or with a truncated one.
    """
    found = []
    for d in checkpoint_dir.glob("checkpoint-*"):
        suffix = d.name.rsplit("-", 1)[-1]
        if d.is_dir() and suffix.isdigit() and _saved_step(d) == int(suffix):
            found.append((int(suffix), d))
    return max(found)[1] if found else None


def _saved_step(checkpoint: Path) -> int | None:
    try:
        return int(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def split_session_logs(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """TRL's log history without session facts, and those facts summarised (total/mean seconds).

    What remains is a pure function of the run's inputs: an interrupted and resumed run logs the same.
    """

    def session(key: str) -> bool:
        return key in _SESSION_KEYS or key.endswith(_SESSION_SUFFIXES)

    kept = [{k: v for k, v in row.items() if not session(k)} for row in history]
    kept = [row for row in kept if set(row) - {"step", "epoch"}]  # drop rows that held only session facts
    steps = [float(row["step_time"]) for row in history if "step_time" in row]
    timings = {"train_s": sum(float(r.get("train_runtime", 0.0)) for r in history)}
    if steps:
        timings["mean_step_s"] = sum(steps) / len(steps)
    return kept, timings


def prepare_checkpoints(ckpt_dir: Path, fingerprint: str | None, resume: bool) -> Path | None:
    """The checkpoint to resume from, after clearing checkpoints that belong to other inputs.

    ``resume=True`` (``--resume``): the latest checkpoint whatever it was trained on (continuing with new
    params is the caller's intent), an error when there is none. Otherwise the latest checkpoint when
    the folder's fingerprint equals ``fingerprint`` and that run did not finish (an interrupted run of
    the same inputs), else none: the folder is emptied and stamped with ``fingerprint``. Call on the
    main process only.
    """
    if resume:
        found = latest_checkpoint(ckpt_dir)
        if found is None:
            raise FileNotFoundError(
                f"--resume: no complete checkpoint under {ckpt_dir}; run without --resume first"
            )
        _stamp(ckpt_dir, fingerprint)
        return found
    recorded, finished = _read_stamp(ckpt_dir)
    same_inputs = fingerprint is not None and recorded == fingerprint
    if same_inputs and not finished and (found := latest_checkpoint(ckpt_dir)):
        log.info("resuming the interrupted run of the same inputs from %s", found)
        return found
    if ckpt_dir.exists():
        log.info("fresh run: removing old checkpoints in %s", ckpt_dir)
        shutil.rmtree(ckpt_dir)
    _stamp(ckpt_dir, fingerprint)
    return None


def _read_stamp(ckpt_dir: Path) -> tuple[str | None, bool]:
    """The fingerprint the checkpoints were trained on, and whether that run finished."""
    try:
        stamp = json.loads((ckpt_dir / FINGERPRINT_FILE).read_text(encoding="utf-8"))
        return str(stamp["fingerprint"]), bool(stamp.get("finished", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, False


def _stamp(ckpt_dir: Path, fingerprint: str | None, *, finished: bool = False) -> None:
    """Record what the checkpoints were trained on; ``finished`` once the run saved its model, so a
    re-run of the same inputs (``dvc repro -f train``) starts over instead of training past the end."""
    if fingerprint is not None:
        stamp = {"fingerprint": fingerprint, **({"finished": True} if finished else {})}
        write_json_atomic(ckpt_dir / FINGERPRINT_FILE, stamp)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (TRL/transformers seed their own samplers from ``args.seed``)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def grpo_config(p: TrainParams, output_dir: Path, weights: list[float], report_to: list[str]) -> Any:
    """TRL's GRPOConfig from the passthrough block plus the keys this module owns."""
    from trl import GRPOConfig

    clash = [k for k in _OWNED_KEYS if k in p.grpo]
    if clash:
        raise ValueError(
            f"train.grpo must not set {clash}: use train.reward_weights / the stage's --out instead"
        )
    import torch

    cuda = torch.cuda.is_available()
    defaults = {
        "seed": p.seed,
        "save_only_model": False,
        "log_completions": False,
        "bf16": cuda,
        "use_cpu": not cuda,
    }
    kwargs = {**defaults, **p.grpo}
    if kwargs.get("save_on_each_node"):
        raise ValueError(
            "train.grpo.save_on_each_node is not supported: the global main process writes the model"
        )
    if kwargs.get("save_only_model"):
        raise ValueError("train.grpo.save_only_model=true drops optimizer state and breaks resume; remove it")
    return GRPOConfig(output_dir=str(output_dir), report_to=report_to, reward_weights=weights, **kwargs)


def check_gpu_memory(model: Any, args: Any, max_fraction: float, sharded: bool) -> StaticMemory | None:
    """Refuse a plain (``sharded``: DeepSpeed or FSDP, which shard and offload this state, are not) CUDA
    run whose weights, reference, gradients and optimizer state leave too little of the GPU for
    activations (``training.memory``); log what they hold either way."""
    import torch

    device = torch.device(args.device)
    if device.type != "cuda" or sharded:
        return None
    params = list(model.parameters())
    optim = getattr(args.optim, "value", str(args.optim))
    static = static_memory(
        n_params=sum(t.numel() for t in params),
        n_trainable=sum(t.numel() for t in params if t.requires_grad),
        param_bytes=params[0].element_size(),
        optim=optim,
        with_reference=args.beta != 0.0,
    )
    if static is None:
        log.info("GPU memory of optimizer %r is not estimated; no check before the first step", optim)
        return None
    total = torch.cuda.mem_get_info(device)[1]
    log.info("held on %s for the whole run: %s of %.1f GiB", device, static.describe(), total / GIB)
    check_fits(static, total, max_fraction, f"{device} ({torch.cuda.get_device_name(device)})")
    return static


def train(
    p: TrainParams,
    records: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    base_model: str | Path,
    load_frames: FrameLoader,
    resume: bool = False,
    fingerprint: str | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train the policy with GRPO on ``records`` (label rows) and save it to ``out_dir/model``.

    ``load_frames(video_id) -> (frames (T, H, W, 3) uint8 RGB, sampling dict)`` supplies the prompted
    frames as the prompt stage sampled them. ``resume=True`` continues from the latest checkpoint in
    ``out_dir/checkpoints`` (step count, optimizer, scheduler, RNG) and fails if there is none; without
    it, checkpoints stamped with the same ``fingerprint`` are resumed (``prepare_checkpoints``).
    """
    # ------------------------------------------------------------------ seed, config, checkpoint
    seed_everything(p.seed)
    out = Path(out_dir)
    ckpt_dir = out / CHECKPOINT_DIR
    if resume and latest_checkpoint(ckpt_dir) is None:  # every rank fails alike, before any setup
        raise FileNotFoundError(
            f"--resume: no complete checkpoint under {ckpt_dir}; run without --resume first"
        )
    rows = list(records)[: p.max_samples] if p.max_samples else list(records)
    if not rows:
        raise ValueError(
            "no training samples: the label file is empty (did the label stage drop everything?)"
        )
    funcs, weights = build_reward_funcs(
        p.reward_weights, p.gate_on_format, dialect=p.answer_parser, id_needs_time=p.reward_id_needs_time
    )
    report_to = report_targets()
    args = grpo_config(p, ckpt_dir, weights, report_to)  # sets up the process group under accelerate
    batching = batch_semantics(args)
    log.info("GRPO batching: %s", batching.to_dict())
    for departure in batching.departures_from_official():
        log.info("GRPO batching departs from the official trainer: %s", departure)
    require_triton_compiler(str(args.device))  # every rank, before any model loads
    require_one_gpu_per_process(args.n_gpu)
    chosen = prepare_checkpoints(ckpt_dir, fingerprint, resume) if args.should_save else None
    _wait_for_everyone(args)  # unconditional (every rank must reach it); none sees old checkpoints
    resume_from = _broadcast_path(chosen)

    # ------------------------------------------------------------------ data
    question_template = template.load_template(base_model)  # the official text when it ships none
    dataset = video_dataset(rows, load_frames, question_template)

    # ------------------------------------------------------------------ model
    model, processor = load_policy(
        base_model, device=device or "cpu", dtype="bfloat16" if args.bf16 else "float32"
    )
    if args.gradient_checkpointing:
        disable_kv_cache(model)

    # ------------------------------------------------------------------ trainer
    trainer = build_trainer(
        model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=processor
    )
    sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled  # set by accelerate's config too
    check_gpu_memory(model, args, p.max_static_gpu_fraction, sharded)  # before any generation, every rank
    weights_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    if weights_dtype == "bfloat16" and not sharded:
        log.warning(
            "training in pure bfloat16 (no fp32 master weights): an update smaller than a weight's bf16 "
            "resolution rounds away, as most at lr %g do; right for a first step, not for the paper's "
            "numbers (README: train under DeepSpeed ZeRO, which keeps fp32 master weights)",
            args.learning_rate,
        )

    if resume_from is not None and not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        load_checkpoint_weights(trainer.model, resume_from)

    # ------------------------------------------------------------------ train
    log.info("GRPO on %d samples, resume_from=%s, report_to=%s", len(rows), resume_from, report_to)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    # ------------------------------------------------------------------ save (main process writes)
    model_dir = out / MODEL_DIR
    save_final_model(trainer, processor, model_dir, question_template)
    history, timings = split_session_logs(list(trainer.state.log_history))
    if args.should_save:
        write_json_atomic(out / "log_history.json", history)
        _stamp(ckpt_dir, fingerprint, finished=True)  # kept for --resume, never resumed by itself
    _wait_for_everyone(args)
    final = {k: float(v) for k, v in (history[-1] if history else {}).items() if isinstance(v, int | float)}
    return TrainResult(
        model_dir=model_dir,
        global_step=int(trainer.state.global_step),
        log_history=history,
        resumed_from=str(resume_from) if resume_from else None,
        n_samples=len(rows),
        report_to=report_to,
        final_metrics=final,
        is_main_process=bool(args.should_save),
        batching=batching.to_dict(),
        device=str(args.device),
        timings=timings,
        weights_dtype=weights_dtype,
    )


def load_checkpoint_weights(model: Any, checkpoint: Path) -> None:
    """Copy a Trainer checkpoint's weights into ``model``, through ``from_pretrained``'s key conversion.

    transformers' Trainer resumes a single-process run with ``load_state_dict(strict=False)`` on the
    keys as saved; Qwen2.5-VL saves its language model as ``model.layers.*`` but holds it as
    ``model.language_model.layers.*``, so the Trainer silently leaves the language model at its
    starting weights (measured: a run killed after step 2 and resumed differed from step 3 on). Loading
    the folder with ``from_pretrained`` applies the conversion; the copy is strict. The Trainer's own
    partial load afterwards rewrites the keys that matched with the same values. (DeepSpeed and FSDP
    resume through their own checkpoint formats and are left to the Trainer.)
    """
    dtype = next(model.parameters()).dtype
    saved = type(model).from_pretrained(str(checkpoint), dtype=dtype)
    model.load_state_dict(saved.state_dict(), strict=True)
    del saved


def _broadcast_path(path: Path | None) -> Path | None:
    """The main process's choice of checkpoint, on every rank (a no-op in a single process)."""
    from accelerate.utils import broadcast_object_list

    chosen = broadcast_object_list([str(path) if path else None], from_process=0)[0]
    return Path(chosen) if chosen else None


def _wait_for_everyone(args: Any) -> None:
    """Barrier across the ranks of a distributed run; a no-op in a single process."""
    state = getattr(args, "distributed_state", None)
    if state is not None:
        state.wait_for_everyone()


def save_final_model(trainer: Any, processor: Any, model_dir: Path, question_template: str) -> None:
    """Write the trained policy to ``model_dir`` as ``load_policy`` reads it, correct on any number of ranks.

    ``trainer.save_model`` runs on every rank (under ZeRO-3/FSDP it gathers the sharded weights, a
    collective) and writes on the main one only; that rank builds the folder under a temporary name
    (``atomic_dir``), whose path it broadcasts so all ranks pass the same one, then adds the processor
    and the prompt template. The other ranks wait until the folder is in place.
    """
    from accelerate.utils import broadcast_object_list

    main = bool(trainer.args.should_save)
    with atomic_dir(model_dir) if main else contextlib.nullcontext(None) as tmp:
        staged = broadcast_object_list([str(tmp) if main else None], from_process=0)[0]
        trainer.save_model(staged)
        _wait_for_everyone(trainer.args)  # every rank's part is written before the folder moves
        if main:
            (Path(staged) / "training_args.bin").unlink(missing_ok=True)  # a pickle, not part of the policy
            processor.save_pretrained(staged)
            template.save_template(staged, question_template)
    _wait_for_everyone(trainer.args)


def plot_curves(history: list[dict[str, Any]], out_png: str | Path) -> list[str]:
    """Reward curves (total and per reward, mean ± std), KL and completion length vs step; returns the keys drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stvg.io import atomic_path

    steps = [h for h in history if "step" in h and "reward" in h]
    panels = [
        ("reward", "reward_std"),
        *[
            (k, k[: -len("mean")] + "std")
            for k in sorted({k for h in steps for k in h if k.startswith("rewards/") and k.endswith("/mean")})
        ],
        ("kl", None),
        ("completions/mean_length", None),
        ("frac_reward_zero_std", None),
    ]
    panels = [(k, s) for k, s in panels if any(k in h for h in steps)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.2 * max(1, len(panels)), 2.8), squeeze=False)
    for ax, (key, std_key) in zip(axes[0], panels, strict=False):
        xs = [h["step"] for h in steps if key in h]
        ys = np.array([h[key] for h in steps if key in h], dtype=float)
        ax.plot(xs, ys, marker="o", ms=3)
        if std_key and all(std_key in h for h in steps if key in h):
            sd = np.array([h[std_key] for h in steps if key in h], dtype=float)
            ax.fill_between(xs, ys - sd, ys + sd, alpha=0.25)
        ax.set_title(key, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return [k for k, _ in panels]
