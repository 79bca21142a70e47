"""Label stage: the target instance of every sample by majority vote, its confidence and prompting ceiling.

    stvg label --params params.yaml --data-dir data --prompt-dir artifacts/prompt --out artifacts/label

Reads the train and test annotations of ``params.data`` and the mask database of the prompt stage.
Outputs (written atomically, in ``--out``):

- ``train.jsonl`` / ``test.jsonl`` — one label record per kept or flagged sample of each split (train
  feeds GRPO; test carries the per-sample ceiling the evaluation is compared against);
- ``dropped.jsonl`` — every dropped sample of both splits with its split and reason(s);
- ``metrics.json`` — the prompting ceiling on the test split (``ceiling_m_vIoU``, ``ceiling_m_tIoU``,
  ``ceiling_vIoU@R``; dropped samples count 0, as they would in evaluation), the same over kept test
  labels (``..._kept``) and over train, drop fractions and mean confidence;
- ``summary.json`` — counts per split and status, drop reasons, the protocol (the wall time goes to
  ``artifacts/run_info/label.json``, outside any version).

A label record: ``sample_id, split, dataset, video_id, video, query, sentence_type, target_id,
start_s, end_s, duration_s, fps, n_frames, sampled_start, sampled_end`` (indices into the mask
database's sampled frames that the span maps to), the confidence fields of ``labels.voting.Vote``,
``status, reason, ceiling_viou, ceiling_tiou``, and the precomputed gate columns ``target_in_db``
and ``end_within_video`` (checks/labels.py).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stvg.config import LabelParams, Params, load_params
from stvg.evaluation.metrics import TubeProtocol, TubeScores, aggregate_tubes, get_protocol
from stvg.io import atomic_dir, write_json_atomic, write_jsonl_atomic
from stvg.labels.ceiling import prompting_ceiling
from stvg.labels.voting import label_frame_shift, sampled_span, vote_target
from stvg.records import Sample
from stvg.runinfo import write_run_info
from stvg.tubes import tracked_grid

log = logging.getLogger(__name__)
SPLITS = ("train", "test")
CONFIDENCE_FIELDS = ("vote_share", "margin", "mean_iou", "min_iou", "presence")


def first_videos(samples: Sequence[Sample], max_videos: int) -> list[Sample]:
    """Samples of the first ``max_videos`` distinct videos in file order (0 = all), as the prompt stage."""
    if max_videos <= 0:
        return list(samples)
    keep: list[str] = []
    for s in samples:
        if s.video_id not in keep:
            if len(keep) == max_videos:
                continue
            keep.append(s.video_id)
    chosen = set(keep)
    return [s for s in samples if s.video_id in chosen]


def label_sample(
    sample: Sample, split: str, db: Any, params: LabelParams, protocol: TubeProtocol
) -> dict[str, Any]:
    """The label record of one sample (status ``dropped`` with a reason when it cannot be labelled)."""
    record: dict[str, Any] = {
        "sample_id": sample.sample_id,
        "split": split,
        "dataset": sample.dataset,
        "video_id": sample.video_id,
        "video": sample.video,
        "query": sample.query,
        "sentence_type": sample.sentence_type,
        "start_s": sample.gt_span_s[0] if sample.gt_span_s else None,
        "end_s": sample.gt_span_s[1] if sample.gt_span_s else None,
        "duration_s": sample.duration_s,
        "fps": sample.fps,
        "n_frames": sample.n_frames,
        "target_id": None,
        "target_in_db": False,
        "end_within_video": False,
        "ceiling_viou": 0.0,
        "ceiling_tiou": 0.0,
    }
    if record["start_s"] is not None:
        record["end_within_video"] = bool(
            0 <= record["start_s"] < record["end_s"] <= sample.duration_s + 1e-6
        )
    if not db.has(sample.video_id):
        return {**record, "status": "dropped", "reason": "video_not_in_mask_db"}
    if sample.gt_span_s is None:
        return {**record, "status": "dropped", "reason": "no_gt_span"}
    tracks = db.boxes_by_frame(sample.video_id)
    grid = tracked_grid(db.summary(sample.video_id), tracks)
    shift = label_frame_shift(sample.dataset, params.frame_alignment)
    vote = vote_target(sample.gt_boxes, tracks, params, shift, sample.n_frames or None, grid)
    record.update(
        status=vote.status,
        reason=vote.reason,
        target_id=vote.target_id,
        runner_up_id=vote.runner_up_id,
        n_gt_frames=vote.n_gt_frames,
        n_votes=vote.n_votes,
        n_untracked=vote.n_untracked,
        votes={str(k): v for k, v in vote.votes.items()},
        **{k: getattr(vote, k) for k in CONFIDENCE_FIELDS},
    )
    if vote.target_id is None:
        return record
    record["target_in_db"] = vote.target_id in set(db.instance_ids(sample.video_id))
    score = prompting_ceiling(sample, db.tube(sample.video_id, vote.target_id), grid, protocol)
    record.update(ceiling_viou=score.viou, ceiling_tiou=score.tiou)
    span = sampled_span(db.sampling(sample.video_id).get("times_s", []), *sample.gt_span_s)
    record["sampled_start"], record["sampled_end"] = span if span is not None else (None, None)
    return record


def ceiling_metrics(
    records: Sequence[dict[str, Any]], protocol: TubeProtocol, prefix: str
) -> dict[str, float]:
    """``aggregate_tubes`` of the per-sample ceilings, keys prefixed (``ceiling_m_vIoU`` ...)."""
    n = len(records)
    scores = TubeScores(
        tiou=np.array([r["ceiling_tiou"] for r in records], dtype=np.float64),
        viou=np.array([r["ceiling_viou"] for r in records], dtype=np.float64),
        failure=np.zeros(n, dtype=np.int8),
    )
    agg = aggregate_tubes(scores, protocol)
    return {
        f"{prefix}_{k}": float(v)
        for k, v in agg.items()
        if k in ("m_tIoU", "m_vIoU") or k.startswith("vIoU@")
    }


def split_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per status, drop fraction and drop reasons of one split."""
    status = Counter(r["status"] for r in records)
    reasons = Counter(
        reason for r in records if r["status"] == "dropped" for reason in r["reason"].split(";")
    )
    n = len(records)
    return {
        "n": n,
        "kept": status.get("kept", 0),
        "flagged": status.get("flagged", 0),
        "dropped": status.get("dropped", 0),
        "drop_fraction": status.get("dropped", 0) / n if n else 0.0,
        "drop_reasons": dict(sorted(reasons.items())),
    }


def run(params: Params, data_dir: Path, prompt_dir: Path, out: Path) -> dict[str, Any]:
    """Label both splits and write the outputs; returns the summary."""
    from stvg.data.registry import load_samples
    from stvg.prompting.maskdb import MaskDB

    t0 = time.perf_counter()
    d = params.data
    protocol = get_protocol(
        params.evaluate.protocol,
        threshold_op=params.evaluate.threshold_op,
        iou_thresholds=params.evaluate.iou_thresholds,
    )
    db = MaskDB(prompt_dir)
    by_split: dict[str, list[dict[str, Any]]] = {}
    invalid: dict[str, int] = {}
    for split, annotation in zip(SPLITS, (d.train_annotation, d.test_annotation)):
        loaded = load_samples(
            d.dataset, data_dir / annotation, video_root=data_dir / d.video_root, skip_invalid=d.skip_invalid
        )
        invalid[split] = len(loaded.invalid)
        for bad in loaded.invalid:
            log.warning("%s: invalid sample skipped: %s", split, bad)
        samples = first_videos(loaded.samples, d.max_videos)
        by_split[split] = [
            label_sample(s, split, db, params.label, protocol)
            for s in tqdm(samples, desc=f"label {split}", unit="sample")
        ]
    metrics: dict[str, float] = {}
    test = by_split["test"]
    metrics.update(ceiling_metrics(test, protocol, "ceiling"))
    metrics.update(ceiling_metrics([r for r in test if r["status"] != "dropped"], protocol, "ceiling_kept"))
    metrics.update(ceiling_metrics(by_split["train"], protocol, "train_ceiling"))
    summary: dict[str, Any] = {"protocol": protocol.name, "invalid_samples": invalid, "splits": {}}
    for split, records in by_split.items():
        s = split_summary(records)
        summary["splits"][split] = s
        metrics[f"{split}_drop_fraction"] = s["drop_fraction"]
        kept = [r for r in records if r["status"] != "dropped"]
        for k in CONFIDENCE_FIELDS:
            metrics[f"{split}_mean_{k}"] = float(np.mean([r[k] for r in kept])) if kept else 0.0
    with atomic_dir(out) as tmp:
        for split, records in by_split.items():
            write_jsonl_atomic(tmp / f"{split}.jsonl", [r for r in records if r["status"] != "dropped"])
        write_jsonl_atomic(
            tmp / "dropped.jsonl", [r for rs in by_split.values() for r in rs if r["status"] == "dropped"]
        )
        write_json_atomic(tmp / "metrics.json", metrics)
        write_json_atomic(tmp / "summary.json", {**summary, "metrics": metrics})
    write_run_info(out, "label", {"total_s": time.perf_counter() - t0})
    return {**summary, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    """CLI entry (``stvg label``)."""
    ap = argparse.ArgumentParser(
        prog="stvg label", description="Reconstruct target labels and the prompting ceiling."
    )
    ap.add_argument("--params", default="params.yaml", type=Path)
    ap.add_argument(
        "--data-dir", default="data", type=Path, help="root of the annotation paths in params.data"
    )
    ap.add_argument(
        "--prompt-dir", default="artifacts/prompt", type=Path, help="the prompt stage's mask database"
    )
    ap.add_argument("--out", default="artifacts/label", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    summary = run(params, args.data_dir, args.prompt_dir, args.out)
    m = summary["metrics"]
    for split, s in summary["splits"].items():
        print(
            f"label {split}: {s['n']} samples, {s['kept']} kept, {s['flagged']} flagged, "
            f"{s['dropped']} dropped {s['drop_reasons']}"
        )
    print(
        f"label: prompting ceiling on test m_vIoU={m['ceiling_m_vIoU']:.4f} m_tIoU={m['ceiling_m_tIoU']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
