"""What the tiny policy can learn from the embedded default's training labels when it is *told* the answers:
a supervised reference for GRPO on the same data, scored on the benchmark split exactly as the evaluate stage.

    .venv/bin/python benchmarks/bench_supervised_reference.py [--artifacts artifacts] [--steps 600]
        [--lr 3e-4 1e-3] [--seed 0 [1 ...]]

Starts from the base_model stage's warmed-up policy and trains it by next-token loss on the training
labels' own answers (the label's target ID and GT span, in the format warm-up's style), then runs the
evaluate stage's ``run`` on the benchmark split. GRPO sees the same 24 samples and learns from a reward
alone; this shows what the model generalises to when their answers are given outright. A reference,
not a pipeline option: the paper trains by GRPO alone. Prints one JSON line per seed and
learning rate; needs a finished ``make run`` (its artifacts).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def supervised_item(rows: list[dict[str, Any]], db: Any) -> Any:
    """A ``make_item`` for ``warm_up_format``: a random training label, answered with its own ID and span."""
    from stvg.training.warmup import WarmupItem, warmup_answer

    def make(rng: np.random.Generator) -> WarmupItem:
        row = rows[int(rng.integers(len(rows)))]
        return WarmupItem(
            db.sampled_frames(row["video_id"]),
            db.sampling(row["video_id"]),
            row["query"],
            warmup_answer(int(row["target_id"]), float(row["start_s"]), float(row["end_s"])),
        )

    return make


def reference_run(artifacts: Path, params_path: Path, steps: int, lr: float, seed: int) -> dict[str, Any]:
    """Train a copy of the base policy on the training answers, then score it on the benchmark split."""
    from stvg.config import load_params
    from stvg.io import read_jsonl
    from stvg.prompting.maskdb import MaskDB
    from stvg.stages import evaluate
    from stvg.training import template
    from stvg.training.policy import load_policy, save_policy
    from stvg.training.warmup import warm_up_format

    params = load_params(params_path)
    db = MaskDB(artifacts / "prompt")
    rows = read_jsonl(artifacts / "label" / "train.jsonl")  # kept and flagged: what the train stage reads
    base = artifacts / "base_model"
    model, processor = load_policy(base)
    question_template = template.load_template(base)
    t0 = time.perf_counter()
    fit = warm_up_format(
        model,
        processor,
        steps=steps,
        lr=lr,
        batch=4,
        seed=seed,
        make_item=supervised_item(rows, db),
        question_template=question_template,
    )
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="stvg-supervised-") as tmp:
        save_policy(model, processor, Path(tmp) / "model", question_template)
        summary = evaluate.run(
            params,
            artifacts.parent / "data",  # the repository's data/, beside its artifacts/
            artifacts / "prompt",
            artifacts / "label",
            Path(tmp) / "model",
            Path(tmp) / "evaluate",
        )
    m = summary["metrics"]
    return {
        "bench": "supervised_reference",
        "train_samples": len(rows),
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "train_loss_first": round(fit["format_loss_first"], 3),
        "train_loss_last": round(fit["format_loss_last"], 3),
        "seconds": round(seconds, 1),
        **{f"policy/{k}": round(m[k], 4) for k in ("m_tIoU", "m_vIoU", "vIoU@0.3", "parse_rate")},
        "random/m_tIoU": round(m["random/m_tIoU"], 4),
        "random/expected/m_tIoU": round(m["random/expected/m_tIoU"], 4),
        "random/below_policy/m_tIoU": round(m["random/below_policy/m_tIoU"], 4),
        "beats_random_seeded_draw_m_tIoU": m["m_tIoU"] > m["random/m_tIoU"],
    }


def main() -> None:
    from stvg.env import configure_environment

    configure_environment()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, nargs="+", default=[3e-4, 1e-3])
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="sampling seeds (one run each)")
    args = ap.parse_args()
    needed = [args.artifacts / d for d in ("base_model", "prompt", "label/train.jsonl")]
    if not all(p.exists() for p in needed):
        print(json.dumps({"bench": "supervised_reference", "status": "no run: `make run` first"}))
        return
    for seed in args.seed:
        for lr in args.lr:
            print(json.dumps(reference_run(args.artifacts, args.params, args.steps, lr, seed)), flush=True)


if __name__ == "__main__":
    main()
