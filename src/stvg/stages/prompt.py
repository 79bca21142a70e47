"""Prompt stage: every distinct video of the data set -> tracked instances, red-ID renders, sampled frames.

    stvg prompt --params params.yaml --data-dir data --detector artifacts/detector/weights.pt --out artifacts/prompt
    stvg prompt ... --videos a.mp4 b.mp4          # explicit video files instead of the annotations

Videos come from ``data.train_annotation`` and ``data.test_annotation`` (``data.max_videos`` caps
each split). Output is the mask database (``stvg.prompting.maskdb``): content-addressed, so a re-run
prompts only new or changed videos, a changed prompting param, model or prompting code re-prompts all,
and entries of
videos no longer in the data set are pruned. Each video is isolated: an unreadable video, zero frames,
nothing detected or GPU out-of-memory (after the engine's retries) is listed in ``summary.json`` under
``failures`` and the other videos go on. The stage exits 1 only when every video failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stvg.config import Params, ParamsError, load_params, params_to_dict
from stvg.io import write_json_atomic

log = logging.getLogger("stvg.prompt")

# Params that gate or tune speed but never change what is written.
NON_OUTPUT_KEYS = ("max_churn", "max_repairs_per_video", "max_failed_fraction", "offload_to_cpu")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stvg prompt", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--params", default="params.yaml", help="params file (sections data, detector, prompt)"
    )
    parser.add_argument("--data-dir", default="data", help="data root the annotation paths are relative to")
    parser.add_argument("--detector", default="artifacts/detector/weights.pt", help="YOLO weights (.pt)")
    parser.add_argument("--out", default="artifacts/prompt", help="mask database folder")
    parser.add_argument(
        "--device", default="cpu", help="torch device for the detector and SAM2 (cpu, cuda, cuda:0)"
    )
    parser.add_argument(
        "--videos", nargs="*", default=None, help="prompt these files instead of the data set"
    )
    return parser.parse_args(argv)


def dataset_videos(params: Params, data_dir: Path) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """video_id -> file for every distinct video of the train and test annotations; plus load failures."""
    from stvg.data.registry import load_samples

    d = params.data
    videos: dict[str, Path] = {}
    problems: list[dict[str, str]] = []
    for split, rel in (("train", d.train_annotation), ("test", d.test_annotation)):
        if not rel:
            continue
        result = load_samples(
            d.dataset, data_dir / rel, video_root=data_dir / d.video_root, skip_invalid=d.skip_invalid
        )
        problems += [{"video_id": "", "split": split, "error": str(bad)} for bad in result.invalid]
        seen: list[str] = []
        for s in result.samples:
            vid = s.video_id or Path(s.video).name
            if vid in videos or vid in seen:
                continue
            if d.max_videos and len(seen) >= d.max_videos:
                break
            seen.append(vid)
            path = Path(s.video)
            videos[vid] = path if path.is_absolute() or path.exists() else data_dir / path
    return videos, problems


def output_params(params: Params) -> dict[str, Any]:
    """The params that change the database content (part of every entry's key)."""
    prompt = {k: v for k, v in params_to_dict(params.prompt).items() if k not in NON_OUTPUT_KEYS}
    if params.prompt.backend != "sam2":
        prompt = {k: v for k, v in prompt.items() if not k.startswith("sam2_") and k != "window"}
    det = params.detector
    return {
        "prompt": prompt,
        "detector": {"conf": det.conf, "classes": list(det.classes), "imgsz": det.imgsz},
    }


def model_hashes(params: Params, detector_weights: Path) -> dict[str, str]:
    """Content hashes of the model weights used (random SAM2 weights are named by config and seed)."""
    from stvg.prompting.video import content_hash

    out = {"detector": content_hash(detector_weights)}
    if params.prompt.backend == "sam2":
        ckpt = params.prompt.sam2_checkpoint
        out["sam2"] = content_hash(ckpt) if ckpt else f"random:{params.prompt.sam2_cfg}:seed{params.seed}"
    return out


def prompting_code_hash() -> str:
    """Hash of the code that decides what an entry holds: the ``stvg.prompting`` package and geometry.

    Part of every entry's key, so a changed repair rule re-prompts what dvc re-runs the stage for,
    instead of the database handing back entries the old code wrote.
    """
    import stvg.geometry
    import stvg.prompting

    files = sorted(Path(stvg.prompting.__file__).parent.glob("*.py")) + [Path(stvg.geometry.__file__)]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode("utf-8") + b"\0" + f.read_bytes())
    return digest.hexdigest()


def tracker_factory(params: Params, device: str) -> Callable[[], Any] | None:
    """SAM2 tracker sessions sharing one predictor (built once per process); None for the CPU backend."""
    p = params.prompt
    if p.backend != "sam2":
        return None
    import torch

    from stvg.prompting.sam2_tracker import Sam2Tracker, build_predictor

    torch.manual_seed(params.seed)  # random-weight SAM2 must be the same model on every run
    predictor = build_predictor(p.sam2_cfg, p.sam2_checkpoint, device, p.sam2_image_size)
    return lambda: Sam2Tracker(predictor, p.offload_to_cpu)


def run(
    params: Params, videos: dict[str, Path], detector_weights: Path, out: Path, device: str
) -> dict[str, Any]:
    """Prompt every video not already in the database; returns the stage summary."""
    from stvg.prompting.detector import YoloDetector
    from stvg.prompting.engine import prompt_video
    from stvg.prompting.maskdb import MaskDB, entry_key, write_entry
    from stvg.prompting.video import content_hash

    t_start = time.perf_counter()
    db = MaskDB(out)
    db.prune()  # folders a killed run left behind
    common = {
        "params": output_params(params),
        "weights": model_hashes(params, detector_weights),
        "code": prompting_code_hash(),
    }
    det = params.detector
    detector = YoloDetector(
        detector_weights,
        conf=det.conf,
        classes=det.classes,
        imgsz=det.imgsz,
        device=device,
        threads=det.threads,
    )
    make_tracker = None
    failures: list[dict[str, str]] = []
    processed, reused, frames_done, seconds = [], [], 0, 0.0
    keys: dict[str, str] = {}
    for vid in tqdm(sorted(videos), desc="prompt", unit="video"):
        path = videos[vid]
        try:
            key = entry_key(content_hash(path), common["params"], common["weights"], common["code"])
        except OSError as exc:
            failures.append({"video_id": vid, "error": f"{path}: cannot read ({exc}); check data.video_root"})
            continue
        keys[vid] = key
        if db.key(vid) == key:
            reused.append(vid)
            continue
        try:
            if make_tracker is None and params.prompt.backend == "sam2":
                make_tracker = tracker_factory(params, device)
            with db.entry(vid, key) as folder:
                from stvg.prompting.maskdb import PROMPTED

                result = prompt_video(
                    path,
                    detector,
                    params.prompt,
                    make_tracker=make_tracker,
                    prompted_path=folder / PROMPTED,
                    video_id=vid,
                )
                write_entry(folder, result.table, result.summary, result.sampling, result.sampled_frames)
        except Exception as exc:  # noqa: BLE001 - isolate the video; the summary names it and the reason
            log.warning("video %s failed: %s", vid, exc)
            failures.append({"video_id": vid, "error": f"{type(exc).__name__}: {exc}"})
            continue
        processed.append(vid)
        frames_done += int(result.summary["tracked_frames"])
        seconds += float(result.summary["timings"]["total_s"])
    dropped = db.prune(keep=set(keys) - {f["video_id"] for f in failures})
    wall = time.perf_counter() - t_start
    return {
        "videos": len(videos),
        "processed": len(processed),
        "reused": len(reused),
        "failed": len(failures),
        "failures": failures,
        "pruned": dropped,
        "in_database": len(db.video_ids()),
        "tracked_frames": frames_done,
        "prompt_seconds": round(seconds, 3),
        "frames_per_s": round(frames_done / seconds, 3) if seconds > 0 else 0.0,
        "wall_seconds": round(wall, 3),
        "backend": params.prompt.backend,
        "device": device,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"stvg prompt: {exc}", file=sys.stderr)
        return 2
    weights = Path(args.detector)
    if not weights.is_file():
        print(
            f"stvg prompt: detector weights {weights} not found; run `stvg detector` first or pass --detector",
            file=sys.stderr,
        )
        return 2
    problems: list[dict[str, str]] = []
    if args.videos:
        videos = {Path(v).name: Path(v) for v in args.videos}
    else:
        try:
            videos, problems = dataset_videos(params, Path(args.data_dir))
        except (OSError, ValueError) as exc:
            print(f"stvg prompt: cannot read the annotations: {exc}", file=sys.stderr)
            return 2
    if not videos:
        print("stvg prompt: no videos to prompt; check data.* in params.yaml or --videos", file=sys.stderr)
        return 2
    out = Path(args.out)
    summary = run(params, videos, weights, out, args.device)
    summary["invalid_samples"] = problems
    write_json_atomic(out / "summary.json", summary)
    print(
        f"prompt: {summary['processed']} prompted, {summary['reused']} reused, {summary['failed']} failed "
        f"of {summary['videos']} videos ({summary['frames_per_s']} frames/s) -> {out}"
    )
    return 1 if summary["failed"] and not (summary["processed"] or summary["reused"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
