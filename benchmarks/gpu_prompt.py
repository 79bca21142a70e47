"""Paper-setting prompting on one GPU: SAM2.1-large + YOLO12-x architectures (random weights).

    python benchmarks/gpu_prompt.py                 # on a CUDA GPU (part of benchmarks/gpu_report.sh)
    python benchmarks/gpu_prompt.py --dry-run       # CPU, SAM2.1-tiny / yolov8n at toy sizes: the script works

Prints one JSON object per measurement:

- ``raw_sam2``: frames/s of bare SAM2 propagation over the speed clip (one session; ``init_state`` and
  the box prompts included), three objects prompted on frame 0;
- ``prompting``: frames/s of the whole engine (``engine.prompt_video``: windows carried by mask prompts,
  a YOLO forward pass every 15 frames, keyframe matching, the backward pass, ID repair, the red-ID
  overlay and the policy's sampled frames; no mp4 written) on the same clip and the same three objects;
  ``ratio`` = prompting / raw;
- ``memory``: for a short and a long clip (300 and 900 frames at 30 fps), the engine's peak GPU memory
  (allocated and reserved) and peak CPU RSS (where ``offload_to_cpu`` keeps SAM2's state), and the
  long/short ratios (windowing should keep them near 1); each clip's figures are also printed as soon
  as it is done (``memory_clip``), so a run cut by its time limit keeps what it measured.

The objects are seeded once (``gpu_scene.FixedPrompts``): random-weight masks match no later detection,
so re-detections would otherwise add IDs and time a growing instance count against raw SAM2's three.
Both paths run SAM2's image predictor on the three boxes (its cost is timed) but start each object from
its filled box (``gpu_scene.BoxMasks``): random-weight masks are arbitrary blobs that the duplicate rule
would merge into one object.
Both paths are warmed up on a short clip first (cuDNN/kernel selection, lazy CUDA init), then timed with
CUDA synchronised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks.gpu_scene` from a checkout

from benchmarks.gpu_scene import BoxMasks, FixedPrompts, Scene, build_yolo

PAPER = {"cfg": "configs/sam2.1/sam2.1_hiera_l.yaml", "yolo": "yolo12x.yaml", "size": 1024, "imgsz": 640}
DRY = {"cfg": "configs/sam2.1/sam2.1_hiera_t.yaml", "yolo": "yolov8n.yaml", "size": 128, "imgsz": 64}


class RssPeak:
    """Peak resident memory of this process while the block runs (sampled from /proc every 20 ms)."""

    def __enter__(self) -> Self:
        self.peak = self.start = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(device: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def raw_sam2(predictor: Any, scene: Scene, offload: bool) -> int:
    """Bare SAM2: one session over the whole clip, the three objects boxed on frame 0; frames tracked."""
    from stvg.prompting.backends.sam2.session import Sam2Segmenter, Sam2Session

    n = scene.meta.n_frames
    session = Sam2Session(predictor, offload_to_cpu=offload)
    first = scene.read(0, n)
    session.start(first)
    for k, mask in enumerate(BoxMasks(Sam2Segmenter(predictor)).masks(first[0], scene.boxes(0)), start=1):
        session.add_mask(0, k, mask)
    done = 1 + sum(1 for _ in session.propagate(1, n - 1))
    session.reset()
    return done


def prompting(predictor: Any, scene: Scene, yolo: Any, p: Any, device: str, imgsz: int) -> dict[str, Any]:
    """The whole engine on the clip with YOLO run on every keyframe; the video's summary and timings."""
    from stvg.prompting.backends.sam2 import Sam2Backend
    from stvg.prompting.backends.sam2.session import Sam2Segmenter, Sam2Session
    from stvg.prompting.engine import prompt_video

    detector = FixedPrompts(scene, yolo=yolo, device=device, imgsz=imgsz)
    backend = Sam2Backend(
        p.sam2,
        p.detect,
        device=device,
        session=lambda offload: Sam2Session(predictor, offload),
        segmenter=BoxMasks(Sam2Segmenter(predictor)),
    )
    result = prompt_video(scene, p, detector, backend=backend)
    return {**result.summary, "timings": result.timings}


def memory(predictor: Any, n: int, scene_args: tuple, yolo: Any, p: Any, device: str, imgsz: int) -> dict:
    """Peak GPU memory (allocated, reserved) and CPU RSS of prompting an ``n``-frame clip."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with RssPeak() as rss:
        summary, seconds = _timed(
            device, lambda: prompting(predictor, Scene(n, *scene_args), yolo, p, device, imgsz)
        )
    return {
        "frames": n,
        "seconds": round(seconds, 2),
        "instances": summary["instances"],
        "gpu_allocated_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "gpu_reserved_peak_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1) if cuda else None,
        "cpu_rss_peak_mb": round(rss.peak, 1),
        "cpu_rss_start_mb": round(rss.start, 1),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dry-run", action="store_true", help="CPU, SAM2.1-tiny and yolov8n at toy sizes")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--speed-frames", type=int, default=300, help="clip for raw vs prompting throughput")
    ap.add_argument("--memory-frames", type=int, nargs=2, default=[300, 900], help="short and long clip")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.device, args.speed_frames, args.memory_frames = "cpu", 6, [4, 8]
    return args


def prompt_params(setup: dict[str, Any], dry_run: bool) -> Any:
    """The sam2 backend's params for the report (paper settings; toy window and re-detection dry)."""
    from stvg.config import PromptParams, RepairParams, Sam2Params

    sam2 = Sam2Params(
        cfg=setup["cfg"],
        image_size=setup["size"],
        redetect_every=3 if dry_run else 15,
        window=4 if dry_run else 64,
    )
    # random weights may lose an object after frame 0: keep it, do not fail
    return PromptParams(backend="sam2", sam2=sam2, repair=RepairParams(min_track_frames=1))


def throughput(
    predictor: Any, scene: Scene, yolo: Any, p: Any, device: str, imgsz: int, common: dict[str, Any]
) -> None:
    """Bare SAM2 propagation, then the prompt engine, on the same clip and objects; one line each."""
    sam2 = p.sam2
    n_raw, raw_s = _timed(device, lambda: raw_sam2(predictor, scene, sam2.offload_to_cpu))
    raw_fps = n_raw / raw_s
    raw = {"frames": n_raw, "objects": 3, "seconds": round(raw_s, 2), "frames_per_s": round(raw_fps, 2)}
    print(json.dumps({**common, "measure": "raw_sam2", **raw}), flush=True)
    summary, eng_s = _timed(device, lambda: prompting(predictor, scene, yolo, p, device, imgsz))
    eng_fps = scene.meta.n_frames / eng_s
    engine = {
        "frames": scene.meta.n_frames,
        "objects": summary["raw_tracks"],
        "seconds": round(eng_s, 2),
        "frames_per_s": round(eng_fps, 2),
        "ratio": round(eng_fps / raw_fps, 3),
        "window": sam2.window,
        "redetect_every": sam2.redetect_every,
        "timings": summary["timings"],
    }
    print(json.dumps({**common, "measure": "prompting", **engine}), flush=True)


def memory_report(
    predictor: Any,
    frames: list[int],
    scene_args: tuple,
    yolo: Any,
    p: Any,
    device: str,
    imgsz: int,
    common: dict[str, Any],
) -> None:
    """Peak GPU (allocated, reserved) and CPU RSS of a short and a long clip, and their ratios."""
    peaks = {}
    for name, n in zip(("short", "long"), frames, strict=True):  # each printed at once: a time limit keeps it
        peaks[name] = memory(predictor, n, scene_args, yolo, p, device, imgsz)
        print(json.dumps({**common, "measure": "memory_clip", "clip": name, **peaks[name]}), flush=True)
    ratios = {}
    for key in ("gpu_allocated_peak_mb", "gpu_reserved_peak_mb", "cpu_rss_peak_mb"):
        if peaks["short"][key]:
            ratios[key] = round(peaks["long"][key] / peaks["short"][key], 3)
    sam2 = p.sam2
    memory_line = {"window": sam2.window, "offload_to_cpu": sam2.offload_to_cpu, **peaks}
    print(json.dumps({**common, "measure": "memory", **memory_line, "long_over_short": ratios}), flush=True)


def main(argv: list[str] | None = None) -> int:
    from stvg.env import configure_environment

    configure_environment()
    args = parse_args(argv)

    import torch

    from stvg.prompting.backends.sam2.session import build_predictor
    from stvg.runtime import device_report, sam2_hole_filling

    setup = DRY if args.dry_run else PAPER
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_prompt: no CUDA device; run with --dry-run for the CPU check", file=sys.stderr)
        return 2
    h, w = (72, 96) if args.dry_run else (720, 1280)
    p = prompt_params(setup, args.dry_run)
    predictor = build_predictor(setup["cfg"], "", device, setup["size"], 0)
    yolo = build_yolo(setup["yolo"])
    common = {
        "bench": "gpu_prompt",
        **device_report(device),
        "sam2_cfg": setup["cfg"],
        "image_size": setup["size"],
        "yolo": setup["yolo"],
        "sam2_hole_filling": sam2_hole_filling(device),
    }

    warm = Scene(p.sam2.redetect_every + 2, h, w, args.fps)  # untimed: kernels, cuDNN, lazy init
    raw_sam2(predictor, warm, p.sam2.offload_to_cpu)
    prompting(predictor, warm, yolo, p, device, setup["imgsz"])

    throughput(predictor, Scene(args.speed_frames, h, w, args.fps), yolo, p, device, setup["imgsz"], common)
    memory_report(predictor, args.memory_frames, (h, w, args.fps), yolo, p, device, setup["imgsz"], common)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
