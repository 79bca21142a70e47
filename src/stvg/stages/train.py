"""Train stage: GRPO on the labelled, prompted videos; the trained policy lands in ``--out/model``.

    stvg train --params params.yaml --labels artifacts/label/train.jsonl --prompt-dir artifacts/prompt \\
        --base-model artifacts/base_model --out artifacts/train [--resume]

Multi-GPU (paper scale: params.paper.yaml), DeepSpeed ZeRO-3 (add ``_offload`` to offload to CPU):

    accelerate launch --config_file configs/accelerate/zero3.yaml -m stvg.cli train --params params.yaml \\
        --labels artifacts/label/train.jsonl --prompt-dir artifacts/prompt --base-model artifacts/base_model \\
        --out artifacts/train

Outputs: ``model/`` (weights + processor + prompt_template.json), ``log_history.json`` (TRL's per-step
logs, without wall times), ``reward_curves.png`` and ``summary.json`` -- all pure functions of the
inputs. ``checkpoints/checkpoint-N`` (with optimizer and RNG state) is working state, not a version: a
run killed part-way (``dvc repro train`` included) resumes from the latest checkpoint when it was written
for the same inputs (the fingerprint of ``training_fingerprint``) and ends with the weights of an
uninterrupted run; ``--resume`` continues from it regardless (e.g. after raising ``max_steps``). Wall
times, the checkpoint resumed from and the tracker go to ``artifacts/run_info/train.json``. Label rows
whose video is missing from the mask database are skipped with a warning naming them. With ``MLFLOW_RUN_ID``/``MLFLOW_TRACKING_URI`` set by the flow the
per-step metrics go to that MLflow run. Under ``accelerate launch`` every rank trains; only the main
process writes files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from stvg.config import TrainParams, load_params, params_to_dict
from stvg.io import read_jsonl, write_json_atomic
from stvg.runinfo import write_run_info
from stvg.runtime import device_kind

log = logging.getLogger(__name__)


def _frame_loader(prompt_dir: Path) -> Any:
    from stvg.prompting.maskdb import MaskDB

    db = MaskDB(prompt_dir)

    def load(video_id: str) -> tuple[Any, dict[str, Any]]:
        return db.sampled_frames(video_id), db.sampling(video_id)

    return db, load


def training_fingerprint(p: TrainParams, records: list[dict[str, Any]], db: Any, base_dir: Path) -> str:
    """A hash of everything a training run depends on: params, label rows, prompted videos, the
    base_model stage's folder (the tiny model itself, or the ``source.json`` naming a real one) and the
    training code. Checkpoints stamped with it are resumed only by a run with the same one."""
    import stvg.training

    def content_hash(f: Path) -> str:
        return hashlib.sha256(f.read_bytes()).hexdigest()

    base_files = sorted(f for f in base_dir.rglob("*") if f.is_file())
    code = sorted(Path(stvg.training.__file__).parent.glob("*.py"))
    parts = {
        "params": params_to_dict(p),
        "labels": records,
        "videos": {vid: db.key(vid) for vid in sorted({str(r["video_id"]) for r in records})},
        "base_model": {str(f.relative_to(base_dir)): content_hash(f) for f in base_files},
        "code": {f.name: content_hash(f) for f in code},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stvg train", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", required=True, help="label stage output (train.jsonl)")
    parser.add_argument("--prompt-dir", required=True, help="prompt stage output (the mask database)")
    parser.add_argument("--base-model", required=True, help="base_model stage output")
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from stvg.training.memory import GpuMemoryError
    from stvg.training.policy import resolve_base_model
    from stvg.training.train import plot_curves, train

    p = load_params(args.params).train
    labels_path = Path(args.labels)
    if not labels_path.is_file():
        print(f"stvg train: labels {labels_path} not found; run `stvg label` first")
        return 1
    records = read_jsonl(labels_path)
    db, load_frames = _frame_loader(Path(args.prompt_dir))
    missing = sorted({r.get("video_id", "?") for r in records if not db.has(str(r.get("video_id")))})
    if missing:
        log.warning(
            "skipping %d video(s) absent from the mask database %s: %s",
            len(missing),
            args.prompt_dir,
            missing[:10],
        )
    records = [r for r in records if db.has(str(r.get("video_id")))]
    try:
        base = resolve_base_model(args.base_model)
    except FileNotFoundError as exc:
        print(f"stvg train: {exc}")
        return 1

    t0 = time.perf_counter()
    out = Path(args.out)
    fingerprint = training_fingerprint(p, records, db, Path(args.base_model))
    try:
        result = train(
            p,
            records,
            out,
            base_model=base,
            load_frames=load_frames,
            resume=args.resume,
            fingerprint=fingerprint,
        )
    except GpuMemoryError as exc:  # refused before any generation: one clear line, no output written
        print(f"stvg {exc}", file=sys.stderr)
        return 1
    if not result.is_main_process:  # another rank of a multi-process run: rank 0 writes the outputs
        return 0
    drawn = plot_curves(result.log_history, out / "reward_curves.png")
    steps = [h for h in result.log_history if "reward" in h]
    summary = {
        "base_model": base,
        "n_samples": result.n_samples,
        "skipped_videos": missing,
        "global_step": result.global_step,
        "final_reward": steps[-1]["reward"] if steps else None,
        "mean_reward": sum(h["reward"] for h in steps) / len(steps) if steps else None,
        "plotted": drawn,
        "device_kind": device_kind(result.device),
        "weights_dtype": result.weights_dtype,
        "batching": result.batching,
    }
    write_json_atomic(out / "summary.json", summary)
    facts = {
        "resumed_from": result.resumed_from,
        "report_to": result.report_to,
        "fingerprint": fingerprint,
        "device": result.device,
    }
    write_run_info(out, "train", {**result.timings, "total_s": time.perf_counter() - t0}, facts)
    print(f"train: step {result.global_step}, model in {result.model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
