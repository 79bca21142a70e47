"""Evaluate stage: the trained policy and the baselines answer the benchmark split, scored officially.

    stvg evaluate --params params.yaml --data-dir data --prompt-dir artifacts/prompt \
        --labels artifacts/label --model artifacts/train/model --out artifacts/evaluate

Outputs (atomically, in ``--out``):

- ``predictions.jsonl`` — one line per (policy, sample): raw text, parsed answer or the reason it did
  not parse, strict and repaired scores, the frames each ID-repair fallback filled;
- ``metrics.json`` — DVC metrics: the trained policy's strict headline (``m_tIoU``, ``m_vIoU``,
  ``vIoU@R``), ``repaired/...``, ``parse_rate``, and the baselines as ``oracle/...``, ``random/...``
  (VidSTG adds ``declarative/...`` and ``interrogative/...``), with the random baseline's distribution
  over ``evaluate.random_draws`` runs: ``random/expected/...``, ``random/p95/...`` and
  ``random/below_policy/...`` (the share of runs the policy beats);
- ``plots/tiou_hist.png``, ``plots/viou_curve.png``; ``summary.json``.

The predictions are checked by the flow's gate (``checks.predictions``) before any promotion.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from stvg.config import Params, load_params
from stvg.evaluation.evaluate import (
    HEADLINE,
    RANDOM_STATS,
    ScoredAnswer,
    oracle_answers,
    random_answers,
    random_draw_scores,
    random_reference,
    score_answers,
    summarise,
)
from stvg.evaluation.metrics import get_protocol
from stvg.evaluation.plots import write_plots
from stvg.io import atomic_dir, read_jsonl, write_json_atomic, write_jsonl_atomic
from stvg.records import Sample
from stvg.runinfo import write_run_info
from stvg.stages.label import first_videos
from stvg.training.answer import answer_parser

log = logging.getLogger(__name__)
POLICY = "policy"


def load_test_samples(params: Params, data_dir: Path) -> list[Sample]:
    """The benchmark split of ``params.data`` (the same samples, in the same order, as the label stage)."""
    from stvg.data.registry import load_samples

    d = params.data
    loaded = load_samples(
        d.dataset,
        data_dir / d.test_annotation,
        video_root=data_dir / d.video_root,
        skip_invalid=d.skip_invalid,
    )
    for bad in loaded.invalid:
        log.warning("test: invalid sample skipped: %s", bad)
    return first_videos(loaded.samples, d.max_videos)


def policy_answers(
    params: Params, samples: list[Sample], db: Any, model_dir: Path, device: str = "cpu"
) -> list[str]:
    """Generated answers of the trained policy on ``device``; samples without a prompted video get ""
    (scored 0)."""
    from stvg.training.inference import generate_answers

    have = [i for i, s in enumerate(samples) if db.has(s.video_id)]
    items = [
        {
            "sample_id": samples[i].sample_id,
            "video": db.sampled_frames(samples[i].video_id),
            "sampling": db.sampling(samples[i].video_id),
            "query": samples[i].query,
        }
        for i in have
    ]
    e = params.evaluate
    settings = {
        "batch_size": e.batch_size,
        "max_new_tokens": e.max_new_tokens,
        "do_sample": e.do_sample,
        "seed": e.seed,
        "normalize_query": e.normalize_query,
    }
    if e.replicas > 1:  # data parallel over policy replicas: the same batches, so the same greedy answers
        from stvg.evaluation.replicas import replicated_answers

        texts = replicated_answers(model_dir, items, settings, e.replicas, e.ray, device)
    else:
        texts = generate_answers(model_dir, items, device=device, **settings)
    out = [""] * len(samples)
    for i, text in zip(have, texts, strict=True):
        out[i] = text
    return out


def generation_device(params: Params) -> str:
    """Where the policy generates: resolved here, or, with replicas on Ray, the device each replica is given
    (``auto`` is ``cuda`` when replicas hold a GPU: the driver may run on a node without one)."""
    from stvg.runtime import is_device_spec, resolve_device

    e = params.evaluate
    if e.replicas == 1 or not is_device_spec(e.device):
        return resolve_device(e.device, "evaluate.device")
    if e.device == "auto":
        return "cuda" if e.ray.gpus_per_replica > 0 else "cpu"
    return e.device


def run(
    params: Params, data_dir: Path, prompt_dir: Path, label_dir: Path, model_dir: Path, out: Path
) -> dict[str, Any]:
    """Answer, score and write the outputs; returns the summary (with ``metrics``)."""
    from stvg.prompting.maskdb import MaskDB
    from stvg.runtime import device_kind, device_report

    t0 = time.perf_counter()
    e = params.evaluate
    device = generation_device(params)
    protocol = get_protocol(e.protocol, threshold_op=e.threshold_op, iou_thresholds=e.iou_thresholds)
    db = MaskDB(prompt_dir)
    samples = load_test_samples(params, data_dir)
    labels = {r["sample_id"]: r for r in read_jsonl(label_dir / "test.jsonl")}
    by_type = params.data.dataset == "vidstg"

    answers: dict[str, list[str]] = {POLICY: policy_answers(params, samples, db, model_dir, device)}
    if "oracle" in e.baselines:
        answers["oracle"] = oracle_answers(samples, labels)
    if "random" in e.baselines:
        answers["random"] = random_answers(samples, db, e.seed)

    parse = answer_parser(e.answer_parser)
    scored: dict[str, list[ScoredAnswer]] = {
        name: score_answers(name, samples, texts, db, protocol, parse) for name, texts in answers.items()
    }
    metrics: dict[str, float] = {}
    for name, rows in scored.items():
        prefix = "" if name == POLICY else f"{name}/"
        metrics.update({f"{prefix}{k}": v for k, v in summarise(rows, protocol, by_type).items()})
    if "random" in e.baselines and e.random_draws > 0:
        draws = random_draw_scores(samples, db, protocol, e.seed, e.random_draws, parse)
        metrics.update(random_reference(draws, metrics))
    records = [a.to_record() for rows in scored.values() for a in rows]
    summary = {
        "protocol": protocol.name,
        "threshold_op": protocol.threshold_op,
        "answer_parser": e.answer_parser,
        "n_samples": len(samples),
        "n_prompted": sum(db.has(s.video_id) for s in samples),
        "policies": sorted(scored),
        "parse_failures": _reasons(scored[POLICY]),
        "device_kind": device_kind(device),
    }
    with atomic_dir(out) as tmp:
        write_jsonl_atomic(tmp / "predictions.jsonl", records)
        write_json_atomic(tmp / "metrics.json", metrics)
        write_plots(
            {n: {"tiou": [a.tiou for a in r], "viou": [a.viou for a in r]} for n, r in scored.items()},
            tmp / "plots",
            threshold_op=protocol.threshold_op,
        )
        write_json_atomic(tmp / "summary.json", {**summary, "metrics": metrics})
    write_run_info(out, "evaluate", {"total_s": time.perf_counter() - t0}, device_report(device))
    return {**summary, "metrics": metrics}


def _reasons(rows: list[ScoredAnswer]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in rows:
        if not a.parsed.ok:
            counts[a.parsed.reason or "unknown"] = counts.get(a.parsed.reason or "unknown", 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    """CLI entry (``stvg evaluate``)."""
    ap = argparse.ArgumentParser(
        prog="stvg evaluate", description="Evaluate the policy and baselines on the benchmark."
    )
    ap.add_argument("--params", default="params.yaml", type=Path)
    ap.add_argument("--data-dir", default="data", type=Path)
    ap.add_argument("--prompt-dir", default="artifacts/prompt", type=Path)
    ap.add_argument("--labels", default="artifacts/label", type=Path, help="the label stage's output folder")
    ap.add_argument("--model", default="artifacts/train/model", type=Path, help="the trained policy folder")
    ap.add_argument("--out", default="artifacts/evaluate", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    try:
        generation_device(params)
    except ValueError as exc:
        print(f"stvg evaluate: {exc}", file=sys.stderr)
        return 2
    summary = run(params, args.data_dir, args.prompt_dir, args.labels, args.model, args.out)
    m = summary["metrics"]
    keys = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
    table = {
        name: {k: round(m.get(f"{p}{k}", 0.0), 4) for k in keys}
        for name, p in (("policy", ""), ("oracle", "oracle/"), ("random", "random/"))
    }
    spread = {
        k: {stat: round(m[f"random/{stat}/{k}"], 4) for stat in RANDOM_STATS}
        for k in HEADLINE
        if f"random/expected/{k}" in m
    }
    print(json.dumps({"evaluate": table, "random_draws": spread, "parse_rate": m.get("parse_rate", 0.0)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
