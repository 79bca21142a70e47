"""GRPO learns, on the CPU: the toy task's ID reward curve with and without the video in the loss pass,
and the embedded default's trained policy against the random baseline (read from the last pipeline run).

    .venv/bin/python benchmarks/bench_grpo_learning.py [--steps 200] [--artifacts artifacts]

Prints one JSON line per result. The toy task (``stvg.training.toy``): a clip's colour names the target
ID and the question never changes, so only the frames tell the answer; chance is 1 / 4.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def toy_results(steps: int, seed: int) -> None:
    from stvg.training import toy

    model, processor, parse_rate = toy.warmed_policy(seed=seed)
    for video_in_loss in (True, False):
        run = toy.train(model, processor, steps=steps, video_in_loss=video_in_loss, seed=seed)
        tenth = max(1, steps // 10)
        print(
            json.dumps(
                {
                    "bench": "grpo_learning",
                    "task": "toy colour -> ID",
                    "video_in_loss": video_in_loss,
                    "steps": steps,
                    "chance": 1 / len(toy.COLOURS),
                    "warmup_parse_rate": parse_rate,
                    "first_10_steps": round(run.mean(0, 10), 3),
                    "last_10_steps": round(run.mean(-10), 3),
                    "curve_by_tenth": [round(run.mean(i, i + tenth), 3) for i in range(0, steps, tenth)],
                    "seconds": round(run.seconds, 1),
                    "seconds_per_step": round(run.seconds / steps, 3),
                }
            ),
            flush=True,
        )


def embedded_default(artifacts: Path) -> None:
    metrics_path, history_path = (
        artifacts / "evaluate" / "metrics.json",
        artifacts / "train" / "log_history.json",
    )
    if not metrics_path.is_file() or not history_path.is_file():
        print(
            json.dumps(
                {"bench": "grpo_learning", "task": "embedded default", "status": "no run: `make run` first"}
            )
        )
        return
    metrics = json.loads(metrics_path.read_text())
    rewards = [h["reward"] for h in json.loads(history_path.read_text()) if "reward" in h]
    tiou = [h.get("rewards/tiou_reward/mean") for h in json.loads(history_path.read_text()) if "reward" in h]
    k = max(1, len(rewards) // 10)
    print(
        json.dumps(
            {
                "bench": "grpo_learning",
                "task": "embedded default (benchmark split)",
                "grpo_steps": len(rewards),
                "reward_first_tenth": round(float(np.mean(rewards[:k])), 3) if rewards else None,
                "reward_last_tenth": round(float(np.mean(rewards[-k:])), 3) if rewards else None,
                "train_tiou_first_tenth": round(float(np.mean([t for t in tiou[:k] if t is not None])), 3)
                if tiou
                else None,
                "train_tiou_last_tenth": round(float(np.mean([t for t in tiou[-k:] if t is not None])), 3)
                if tiou
                else None,
                **{f"policy/{m}": metrics.get(m) for m in ("m_tIoU", "m_vIoU", "parse_rate")},
                **{f"random/{m}": metrics.get(f"random/{m}") for m in ("m_tIoU", "m_vIoU")},
                "beats_random_m_tIoU": metrics.get("m_tIoU", 0.0) > metrics.get("random/m_tIoU", 1.0),
            }
        )
    )


def main() -> None:
    from stvg.env import configure_environment

    configure_environment()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = ap.parse_args()
    toy_results(args.steps, args.seed)
    embedded_default(args.artifacts)


if __name__ == "__main__":
    main()
