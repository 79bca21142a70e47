"""Prompt stage: every distinct video of the data set -> tracked instances, red-ID renders, sampled frames.

    stvg prompt --params params.yaml --data-dir data --detector artifacts/detector/weights.pt --out artifacts/prompt
    stvg prompt ... --videos a.mp4 b.mp4          # explicit video files instead of the annotations

Videos come from ``data.train_annotation`` and ``data.test_annotation`` (``data.max_videos`` caps
each split). Output is the mask database (``stvg.prompting.maskdb``): content-addressed, so a re-run
prompts only new or changed videos, a changed output param, model or code of the chosen backend
re-prompts all (``key_parts``), and entries of videos no longer in the data set are pruned. Each
video is isolated: an unreadable video, zero frames, no instance left (the message says which step
removed them) or GPU out-of-memory (after the backend's retries) is listed in ``summary.json``
under ``failures`` and the other videos go on. The stage exits 1 only when every video failed, and
3 when a sticky CUDA error left the device unusable (the entries written stay; a re-run resumes).

Where videos are prompted is ``prompt.executor``: ``local`` (this process) or ``ray`` (worker actors
on a Ray cluster, ``prompt.ray``); either way this process is the driver and the only writer of the
database (``stvg.prompting.executors``), and the choice changes no byte of the output. With ``ray``
a worker process that dies is retried (``prompt.ray.max_retries``), then its video is listed.

Determinism: every file under ``--out`` (DVC hashes the folder: the prompted-data version) is a pure
function of the videos, the output-relevant params, the model weights and the prompting code, so a
run resumed after a kill, a run over a subset, or the videos in another order give the same bytes.
What a run did and how long it took (videos prompted / reused / pruned, timings, host) goes to the
run report, ``run_info/prompt.json`` beside the folder (``--report``; ``stvg.runinfo``), which DVC does not track and the
flow logs to MLflow.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stvg.config import Params, ParamsError, load_params
from stvg.io import write_json_atomic

log = logging.getLogger("stvg.prompt")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stvg prompt", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--params", default="params.yaml", help="params file (sections data, detector, prompt)"
    )
    parser.add_argument("--data-dir", default="data", help="data root the annotation paths are relative to")
    parser.add_argument("--detector", default="artifacts/detector/weights.pt", help="YOLO weights (.pt)")
    parser.add_argument("--out", default="artifacts/prompt", help="mask database folder")
    parser.add_argument(
        "--device",
        default=None,
        help="override prompt.device for this run (auto, cpu, cuda, cuda:0); default: from params",
    )
    parser.add_argument(
        "--videos", nargs="*", default=None, help="prompt these files instead of the data set"
    )
    parser.add_argument(
        "--report",
        default=None,
        help="run report (timings, host, what was prompted or reused); default: run_info/<out name>.json beside --out",
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


def key_parts(params: Params, detector_weights: Path, device: str = "cpu") -> dict[str, Any]:
    """What every entry's key hashes besides the video: output params, model weights, the backend's code.

    Per backend: the code hashed is the shared prompting code and the chosen backend's own folder
    (``backends.code_hash``), and only the chosen backend's params section is in, so a change to
    one backend never re-prompts the other's entries.
    """
    from stvg.prompting.backends import code_hash, output_params

    det = params.detector
    return {
        "params": {
            "prompt": output_params(params.prompt, device),
            "detector": {"conf": det.conf, "classes": list(det.classes), "imgsz": det.imgsz},
        },
        "weights": model_hashes(params, detector_weights),
        "code": code_hash(params.prompt.backend),
    }


def model_hashes(params: Params, detector_weights: Path) -> dict[str, str]:
    """Content hashes of the model weights used (random SAM2 weights are named by config and seed)."""
    from stvg.prompting.backends import sam2_checkpoint
    from stvg.prompting.video import content_hash

    out = {"detector": content_hash(detector_weights)}
    sam2 = params.prompt.sam2
    if sam2 is not None:
        ckpt = sam2_checkpoint(params.prompt)
        out["sam2"] = content_hash(ckpt) if ckpt else f"random:{sam2.cfg}:seed{params.seed}"
    return out


@dataclass
class _Progress:
    """What one run of the stage did (the run report; never part of the hashed output)."""

    processed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # video id -> seconds per step
    tracked_frames: int = 0
    device_failure: str = ""  # set when the GPU became unusable and the run stopped early


def run(
    params: Params,
    videos: dict[str, Path],
    detector_weights: Path,
    out: Path,
    device: str,
    detector: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prompt every video not already in the database, on the executor ``prompt.executor`` names.

    The driver side of the driver/worker split (``stvg.prompting.executors``): keys, skips, and the
    one writer that moves staged entries in and writes the index. Returns the stage summary (a pure
    function of the inputs: it is hashed with the database) and the run report (what this run did,
    how long it took, where: never hashed). ``detector`` replaces the YOLO built from
    ``detector_weights`` (whose hash still keys the entries): the GPU tests and benchmarks prompt
    known objects with it, as random-weight YOLO finds none.
    """
    from stvg.prompting.executors import make_executor, staging_dir
    from stvg.prompting.maskdb import MaskDB

    t_start = time.perf_counter()
    db = MaskDB(out)
    db.prune()  # folders a killed run left behind
    done = _Progress()
    jobs, keys = _plan(params, videos, detector_weights, device, db, done)
    staging = staging_dir(params, out)
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run staged is never read
    executor = make_executor(params, detector_weights, device, staging, detector)
    try:
        _drive(executor, jobs, db, done)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    pruned = db.prune(keep=set(keys) - {f["video_id"] for f in done.failures})
    summary = {
        "videos": len(videos),
        "failed": len(done.failures),
        "failures": sorted(done.failures, key=lambda f: f["video_id"]),
        "in_database": len(db.video_ids()),
        "backend": params.prompt.backend,
    }
    if done.device_failure:
        summary["device_failure"] = done.device_failure
    report = _run_report(done, pruned, device, time.perf_counter() - t_start)
    return summary, {**report, **executor.report(), **runtime_report(params, device)}


def _plan(
    params: Params, videos: dict[str, Path], detector_weights: Path, device: str, db: Any, done: _Progress
) -> tuple[list[Any], dict[str, str]]:
    """One job per video whose entry is missing or stale; unreadable videos go to the failures."""
    from stvg.prompting.executors import Job
    from stvg.prompting.maskdb import entry_key
    from stvg.prompting.video import content_hash

    common = key_parts(params, detector_weights, device)
    jobs, keys = [], {}
    for vid in sorted(videos):
        path = videos[vid]
        try:
            key = entry_key(content_hash(path), common["params"], common["weights"], common["code"])
        except OSError as exc:
            done.failures.append(
                {"video_id": vid, "error": f"{path}: cannot read ({exc}); check data.video_root"}
            )
            continue
        keys[vid] = key
        if db.key(vid) == key:
            done.reused.append(vid)
        else:
            jobs.append(Job(vid, str(path.resolve()), key))
    return jobs, keys


def _drive(executor: Any, jobs: list[Any], db: Any, done: _Progress) -> None:
    """Commit each finished entry as it arrives (the one writer); one bar over videos on every worker."""
    bar = tqdm(total=len(jobs), desc="prompt", unit="video")
    try:
        for outcome in executor.run(jobs):
            bar.update(1)
            if outcome.error:
                log.warning("video %s failed: %s", outcome.video_id, outcome.error)
                done.failures.append({"video_id": outcome.video_id, "error": outcome.error})
            else:
                db.commit(outcome.video_id, outcome.key, Path(outcome.staged))
                done.processed.append(outcome.video_id)
                done.timings[outcome.video_id] = outcome.timings
                done.tracked_frames += outcome.tracked_frames
            bar.set_postfix(done=len(done.processed), failed=len(done.failures), in_flight=executor.in_flight)
            if outcome.device_failure:  # the driver's own device is unusable: a new process resumes
                done.device_failure = outcome.error.removeprefix("DeviceFailure: ")
                break
    finally:
        bar.close()


def runtime_report(params: Params, device: str) -> dict[str, Any]:
    """The device the stage ran on and, on the SAM2 path, whether SAM2's hole filling ran (and why not)."""
    from stvg.runtime import device_report, sam2_extension_built, sam2_hole_filling

    out = device_report(device)
    if params.prompt.backend == "sam2":
        out["sam2_c_extension"] = sam2_extension_built()
        out["sam2_hole_filling"] = sam2_hole_filling(device)
    return out


def _run_report(done: _Progress, pruned: list[str], device: str, wall: float) -> dict[str, Any]:
    seconds = sum(t.get("total_s", 0.0) for t in done.timings.values())
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "device": device,
        "processed": len(done.processed),
        "reused": len(done.reused),
        "failed": len(done.failures),
        "pruned": pruned,
        "tracked_frames": done.tracked_frames,
        "prompt_seconds": round(seconds, 3),
        "frames_per_s": round(done.tracked_frames / seconds, 3) if seconds > 0 else 0.0,
        "wall_seconds": round(wall, 3),
        "timings": done.timings,
    }


def driver_device(params: Params, spec: str) -> str:
    """The device entries are keyed by: resolved here for ``local``, on the workers for ``ray``.

    With the ``ray`` executor the driver may run on a node without a GPU, so ``auto`` means ``cuda``
    when each worker holds a GPU (``prompt.ray.gpus_per_task`` > 0), else ``cpu``; each worker then
    checks the device it was given.
    """
    from stvg.runtime import is_device_spec, resolve_device

    if params.prompt.executor == "local":
        return resolve_device(spec, "prompt.device")
    if not is_device_spec(spec):
        return resolve_device(spec, "prompt.device")  # raises the one-line error
    if spec == "auto":
        return "cuda" if params.prompt.ray.gpus_per_task > 0 else "cpu"
    return spec


def main(argv: list[str] | None = None, detector: Any = None) -> int:
    """The stage command; ``detector`` replaces the YOLO as in ``run`` (tests, benchmarks)."""
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
    try:  # a wrong device, a missing SAM2 checkpoint or detector classes: one line, before any video
        device = driver_device(params, args.device or params.prompt.device)
        summary, report = run(params, videos, weights, out, device, detector)
    except (ValueError, FileNotFoundError) as exc:
        print(f"stvg prompt: {exc}", file=sys.stderr)
        return 2
    summary["invalid_samples"] = problems
    write_json_atomic(out / "summary.json", summary)
    write_json_atomic(run_report_path(out, args.report), report)
    print(
        f"prompt: {report['processed']} prompted, {report['reused']} reused, {summary['failed']} failed "
        f"of {summary['videos']} videos ({report['frames_per_s']} frames/s) -> {out}"
    )
    if summary.get("device_failure"):
        print(f"stvg prompt: stopped early: {summary['device_failure']}", file=sys.stderr)
        return 3
    return 1 if summary["failed"] and not summary["in_database"] else 0


def run_report_path(out: Path, report: str | None = None) -> Path:
    """Where the run report goes: ``--report``, else ``run_info/<out's name>.json`` beside the database
    (``runinfo.run_info_path``: ``artifacts/run_info/prompt.json`` for the stage's own folder).

    Outside the database folder on purpose: DVC hashes that folder, and timings must not change a version.
    """
    from stvg.runinfo import run_info_path

    return Path(report) if report else run_info_path(out, out.name)


if __name__ == "__main__":
    raise SystemExit(main())
