"""GRPO learns, on the CPU: the toy task's ID reward curve with and without the video in the loss pass,
and the embedded default's trained policy against the random baseline (read from the last pipeline run),
with what a span prior alone can reach there and on held-out synthetic seeds.

    .venv/bin/python benchmarks/bench_grpo_learning.py [--steps 300] [--seed 0 [1 ...]]
        [--artifacts artifacts] [--prior-seeds 10] [--skip-toy]

Prints one JSON line per result. The toy task (``stvg.training.toy``): a clip's colour names the target
ID and the question never changes, so only the frames tell the answer; chance is 1 / 4. Each toy run
also gives the trained policy's greedy accuracy on 64 held-out toy videos. ``--seed`` picks the model,
warm-up and sampling seed of each run pair (several: one pair each); ``README.md`` says which seeds the
toy's settings were chosen on and which were held out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def toy_results(steps: int, seed: int) -> None:
    from stvg.training import toy

    parse_rate, *runs = toy.train_pair(seed=seed, steps=steps)
    for video_in_loss, run in zip((True, False), runs, strict=True):
        tenth = max(1, steps // 10)
        print(
            json.dumps(
                {
                    "bench": "grpo_learning",
                    "task": "toy colour -> ID",
                    "seed": seed,
                    "video_in_loss": video_in_loss,
                    "steps": steps,
                    "chance": 1 / len(toy.COLOURS),
                    "warmup_parse_rate": parse_rate,
                    "first_10_steps": round(run.mean(0, 10), 3),
                    "best_10_steps": round(max(run.windows(10)), 3),
                    "last_30_steps": round(run.mean(-30), 3),
                    "curve_by_tenth": [round(run.mean(i, i + tenth), 3) for i in range(0, steps, tenth)],
                    "greedy_accuracy_held_out": round(run.greedy_accuracy, 3),
                    "greedy_by_colour": [round(v, 3) for v in run.greedy_by_colour],
                    "seconds": round(run.seconds, 1),
                    "seconds_per_step": round(run.seconds / steps, 3),
                }
            ),
            flush=True,
        )


def embedded_default(artifacts: Path) -> None:
    from stvg.evaluation.evaluate import HEADLINE, RANDOM_STATS

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
                **{
                    f"random/{stat}{m}": metrics.get(f"random/{stat}{m}")
                    for stat in ("", *(f"{s}/" for s in RANDOM_STATS))
                    for m in HEADLINE
                },
                "beats_random_seeded_draw_m_tIoU": metrics.get("m_tIoU", 0.0)
                > metrics.get("random/m_tIoU", 1.0),
            }
        )
    )


def _mean_tiou(spans: np.ndarray, gt: np.ndarray) -> float:
    """m_tIoU of one span per sample (``(n, 2)``) or of one span for every sample (``(2,)``)."""
    from stvg.geometry import temporal_iou

    spans = np.broadcast_to(spans, gt.shape)
    return float(np.mean(temporal_iou(spans[:, 0], spans[:, 1], gt[:, 0], gt[:, 1])))


def _candidate_spans(duration_s: float, grid_s: float) -> np.ndarray:
    edges = np.arange(0.0, duration_s + grid_s / 2, grid_s)
    a, b = np.meshgrid(edges, edges, indexing="ij")
    return np.stack([a[a < b], b[a < b]], axis=1)


def _best_constant(candidates: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return max(candidates, key=lambda c: _mean_tiou(c, gt))


def _random_draws(gt: np.ndarray, durations: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """m_tIoU of ``draws`` independent runs of the random baseline's span draw over the whole split."""
    from stvg.geometry import temporal_iou

    rng = np.random.default_rng(seed)
    spans = np.sort(rng.uniform(0.0, 1.0, (draws, len(gt), 2)), axis=2) * durations[None, :, None]
    tiou = temporal_iou(
        spans[..., 0].ravel(), spans[..., 1].ravel(), np.tile(gt[:, 0], draws), np.tile(gt[:, 1], draws)
    )
    return np.asarray(tiou).reshape(draws, len(gt)).mean(axis=1)


def span_prior(artifacts: Path, draws: int = 200_000, grid_s: float = 0.25) -> None:
    """What any constant answer span (a span prior, all a video-blind policy can learn) scores on the
    benchmark split, next to the random baseline's expectation (its one seeded draw is a sample of it).

    The prior is fitted on the training split's labels (the best constant span on a ``grid_s`` grid) and
    scored on the benchmark split; the best constant span fitted on the benchmark split itself is an
    upper bound no span prior can pass, not a model.
    """

    def spans(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = [json.loads(line) for line in (artifacts / "label" / name).read_text().splitlines() if line]
        gt = np.array([[r["start_s"], r["end_s"]] for r in rows], dtype=np.float64)
        return gt, np.array([r["duration_s"] for r in rows], dtype=np.float64)

    if not (artifacts / "label" / "test.jsonl").is_file():
        return
    (train, _), (test, durations) = spans("train.jsonl"), spans("test.jsonl")
    candidates = _candidate_spans(float(durations.max()), grid_s)
    fitted, bound = _best_constant(candidates, train), _best_constant(candidates, test)
    expected = float(np.mean(_random_draws(test, durations, max(1, draws // len(test)))))
    print(
        json.dumps(
            {
                "bench": "grpo_learning",
                "task": "span prior on the benchmark split",
                "samples": len(test),
                "random_expected_m_tIoU": round(expected, 3),
                "prior_fitted_on_train_s": [round(float(v), 2) for v in fitted],
                "prior_m_tIoU": round(_mean_tiou(fitted, test), 3),
                "best_constant_on_benchmark_s": [round(float(v), 2) for v in bound],
                "best_constant_m_tIoU_bound": round(_mean_tiou(bound, test), 3),
            }
        )
    )


SENTENCE_KINDS = ("before", "after", "entering", "stands still", "while it moves")


def sentence_kind(query: str) -> str:
    """The first of ``SENTENCE_KINDS`` the sentence contains: what a policy reading the text can tell
    about the span's place ("... before X starts moving" is early, "... after X stops" late)."""
    return next((k for k in SENTENCE_KINDS if f" {k}" in f" {query} "), "other")


def held_out_span_priors(seeds: list[int], draws: int = 20_000, grid_s: float = 0.25) -> None:
    """The span priors against the random baseline on synthetic benchmarks of other seeds.

    Seed 0 (the embedded default) is where the priors above were looked at; these seeds are held out.
    Each seed's train split fits a constant span and a constant span per sentence kind (the video-blind
    policies a text-reading model can learn); its benchmark split scores them, against the random
    baseline's distribution: one seeded draw, as ``evaluate`` reports it, is one sample of it.
    """
    import dataclasses
    import tempfile

    from stvg.config import load_params
    from stvg.data.registry import load_samples
    from stvg.data.synthetic import generate_benchmark

    if not seeds:
        return
    base = load_params(Path(__file__).resolve().parents[1] / "params.yaml").synthetic
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            generate_benchmark(dataclasses.replace(base, seed=seed), Path(tmp) / "b", progress=False)
            split = {
                name: load_samples("synthetic", Path(tmp) / "b" / "anno_v2" / f"{name}_v2.json").samples
                for name in ("train", "val")
            }
        gt = {k: np.array([s.gt_span_s for s in v], dtype=np.float64) for k, v in split.items()}
        kinds = {k: [sentence_kind(s.query) for s in v] for k, v in split.items()}
        durations = np.array([s.duration_s for s in split["val"]], dtype=np.float64)
        candidates = _candidate_spans(float(durations.max()), grid_s)
        constant = _best_constant(candidates, gt["train"])
        by_kind = {
            k: _best_constant(candidates, gt["train"][[x == k for x in kinds["train"]]])
            for k in set(kinds["train"])
        }
        kind_spans = np.array([by_kind.get(k, constant) for k in kinds["val"]])
        draws_m = _random_draws(gt["val"], durations, draws, seed=seed)
        prior, kind_prior = _mean_tiou(constant, gt["val"]), _mean_tiou(kind_spans, gt["val"])
        rows.append(
            {
                "seed": seed,
                "random_expected": float(draws_m.mean()),
                "random_p90": float(np.quantile(draws_m, 0.9)),
                "constant_prior": prior,
                "kind_prior": kind_prior,
                "p_constant_beats_a_draw": float(np.mean(prior > draws_m)),
                "p_kind_beats_a_draw": float(np.mean(kind_prior > draws_m)),
            }
        )
    mean = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0] if k != "seed"}
    print(
        json.dumps(
            {
                "bench": "grpo_learning",
                "task": "span priors vs the random baseline, held-out synthetic seeds",
                "seeds": seeds,
                "mean": mean,
                "per_seed": [
                    {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows
                ],
            }
        )
    )


def main() -> None:
    from stvg.env import configure_environment

    configure_environment()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps per toy run (default: toy.STEPS)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument(
        "--prior-seeds", type=int, default=10, help="held-out synthetic seeds 1..N for the priors"
    )
    ap.add_argument("--skip-toy", action="store_true", help="only the embedded default and the span priors")
    args = ap.parse_args()
    if not args.skip_toy:
        from stvg.training import toy

        for seed in args.seed:
            toy_results(args.steps or toy.STEPS, seed)
    embedded_default(args.artifacts)
    span_prior(args.artifacts)
    held_out_span_priors(list(range(1, args.prior_seeds + 1)))


if __name__ == "__main__":
    main()
