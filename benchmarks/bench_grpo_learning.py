"""GRPO learns, on the CPU: the toy task's ID reward curve with and without the video in the loss pass,
and the embedded default's trained policy against the random baseline (read from the last pipeline run),
with what a span prior alone can reach there.

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


def span_prior(artifacts: Path, draws: int = 200_000, grid_s: float = 0.25) -> None:
    """What any constant answer span (a span prior, all a video-blind policy can learn) scores on the
    benchmark split, next to the random baseline's expectation (its one seeded draw is a sample of it).

    The prior is fitted on the training split's labels (the best constant span on a ``grid_s`` grid) and
    scored on the benchmark split; the best constant span fitted on the benchmark split itself is an
    upper bound no span prior can pass, not a model.
    """
    from stvg.geometry import temporal_iou

    def spans(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = [json.loads(line) for line in (artifacts / "label" / name).read_text().splitlines() if line]
        gt = np.array([[r["start_s"], r["end_s"]] for r in rows], dtype=np.float64)
        return gt, np.array([r["duration_s"] for r in rows], dtype=np.float64)

    if not (artifacts / "label" / "test.jsonl").is_file():
        return
    (train, _), (test, durations) = spans("train.jsonl"), spans("test.jsonl")
    edges = np.arange(0.0, float(durations.max()) + grid_s / 2, grid_s)
    a, b = np.meshgrid(edges, edges, indexing="ij")
    candidates = np.stack([a[a < b], b[a < b]], axis=1)

    def mean_tiou(span: np.ndarray, gt: np.ndarray) -> float:
        return float(
            np.mean(temporal_iou(np.full(len(gt), span[0]), np.full(len(gt), span[1]), gt[:, 0], gt[:, 1]))
        )

    fitted = max(candidates, key=lambda c: mean_tiou(c, train))
    bound = max(candidates, key=lambda c: mean_tiou(c, test))
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(test), draws)
    drawn = np.sort(rng.uniform(0.0, 1.0, (draws, 2)), axis=1) * durations[pick, None]
    expected = float(np.mean(temporal_iou(drawn[:, 0], drawn[:, 1], test[pick, 0], test[pick, 1])))
    print(
        json.dumps(
            {
                "bench": "grpo_learning",
                "task": "span prior on the benchmark split",
                "samples": len(test),
                "random_expected_m_tIoU": round(expected, 3),
                "prior_fitted_on_train_s": [round(float(v), 2) for v in fitted],
                "prior_m_tIoU": round(mean_tiou(fitted, test), 3),
                "best_constant_on_benchmark_s": [round(float(v), 2) for v in bound],
                "best_constant_m_tIoU_bound": round(mean_tiou(bound, test), 3),
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
    span_prior(args.artifacts)


if __name__ == "__main__":
    main()
