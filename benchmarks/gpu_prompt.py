"""Paper-setting prompting benchmark: SAM2.1-large + YOLOv12-x architectures (random weights).

    .venv/bin/python benchmarks/gpu_prompt.py --device cuda                 # the paper setting on a GPU
    .venv/bin/python benchmarks/gpu_prompt.py --dry-run                     # tiny CPU run that proves the script works

Prints one JSON object per measurement:
- ``raw_sam2``: frames/s of bare SAM2 propagation (one session over the frames, boxes on frame 0);
- ``prompting``: frames/s of the whole engine (windows, re-detection with YOLO every 15 frames,
  backward pass) on the same frames; ``ratio`` = prompting / raw (goal >= 0.85);
- ``memory``: peak GPU memory of the whole engine on a short vs a long video (goal long/short <= 1.2).
Random YOLO weights detect nothing useful, so the detector here runs the real YOLO forward pass (its
cost) and returns fixed boxes of moving synthetic objects (so SAM2 has instances to track).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from stvg.env import configure_environment


class Frames:
    """Procedural frames (moving squares) by position: no decoding, no memory growth with length."""

    def __init__(self, n: int, h: int, w: int, fps: float = 30.0) -> None:
        from stvg.prompting.video import VideoMeta

        self.meta = VideoMeta(fps=fps, n_frames=n, width=w, height=h)
        self.frame_indices = list(range(n))
        self.h, self.w = h, w

    def boxes(self, t: int) -> list[tuple[float, float, float, float]]:
        s = min(self.h, self.w) // 6
        out = []
        for k in range(3):
            x = (k * self.w // 3 + 2 * t) % (self.w - s)
            y = (k + 1) * self.h // 5
            out.append((float(x), float(y), float(x + s), float(y + s)))
        return out

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        out = []
        for t in range(max(0, start), min(stop, self.meta.n_frames)):
            f = np.full((self.h, self.w, 3), 40, np.uint8)
            for c, (x1, y1, x2, y2) in zip(
                ((230, 40, 40), (40, 230, 40), (40, 40, 230)), self.boxes(t), strict=True
            ):
                f[int(y1) : int(y2), int(x1) : int(x2)] = c
            out.append(f)
        return out


class TimedYolo:
    """Runs the YOLO architecture's forward pass for its cost; returns the scene's known boxes."""

    def __init__(self, arch: str, device: str, imgsz: int, scene: Frames) -> None:
        from ultralytics import YOLO

        self.model, self.device, self.imgsz, self.scene = YOLO(arch), device, imgsz, scene

    def detect_with_masks(self, frames, frame_indices=None):
        from stvg.records import Detection

        self.model.predict(
            [f[..., ::-1] for f in frames], imgsz=self.imgsz, device=self.device, verbose=False
        )
        idx = frame_indices or range(len(frames))
        return [[(Detection(int(t), b, 0.9), None) for b in self.scene.boxes(int(t))] for t in idx]


def peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # CPU dry run: process peak RSS


def main() -> None:
    configure_environment()
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU (SAM2.1-tiny, yolov8n, 128 px)")
    ap.add_argument("--short-s", type=float, default=20.0)
    ap.add_argument("--long-s", type=float, default=600.0)
    args = ap.parse_args()

    import torch

    from stvg.config import DetectParams, Sam2Params
    from stvg.prompting.backends.sam2 import Sam2Backend
    from stvg.prompting.backends.sam2.session import Sam2Session, build_predictor

    if args.dry_run:
        device, cfg, arch, size, h, w, fps = (
            "cpu",
            "configs/sam2.1/sam2.1_hiera_t.yaml",
            "yolov8n.yaml",
            128,
            72,
            96,
            2.0,
        )
        short_n, long_n, speed_n = 6, 12, 6
    else:
        device, cfg, arch, size, h, w, fps = (
            args.device,
            "configs/sam2.1/sam2.1_hiera_l.yaml",
            "yolo12x.yaml",
            1024,
            720,
            1280,
            30.0,
        )
        short_n, long_n, speed_n = int(args.short_s * fps), int(args.long_s * fps), int(args.short_s * fps)
    sam2 = Sam2Params(
        cfg=cfg,
        image_size=size,
        redetect_every=15 if not args.dry_run else 3,
        window=64 if not args.dry_run else 4,
    )
    predictor = build_predictor(cfg, "", device, size, 0)
    backend = Sam2Backend(sam2, DetectParams(), device=device)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"

    # raw SAM2: one session over all frames, the three boxes on frame 0
    scene = Frames(speed_n, h, w, fps)
    tr = Sam2Session(predictor, offload_to_cpu=sam2.offload_to_cpu)
    first = scene.read(0, speed_n)
    tr.start(first)
    for k, mask in enumerate(backend._segmenter.masks(first[0], scene.boxes(0)), start=1):
        tr.add_mask(0, k, mask)
    t0 = time.perf_counter()
    n_raw = sum(1 for _ in tr.propagate(1, speed_n - 1))
    raw_fps = n_raw / (time.perf_counter() - t0)
    tr.reset()
    print(
        json.dumps(
            {
                "bench": "gpu_prompt",
                "measure": "raw_sam2",
                "device": gpu,
                "frames": n_raw,
                "frames_per_s": round(raw_fps, 3),
                "sam2_cfg": cfg,
                "image_size": size,
            }
        )
    )

    det = TimedYolo(arch, device, 640 if not args.dry_run else 64, scene)
    t0 = time.perf_counter()
    raw = backend.track(scene, det)
    eng_fps = speed_n / (time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "bench": "gpu_prompt",
                "measure": "prompting",
                "device": gpu,
                "frames": speed_n,
                "frames_per_s": round(eng_fps, 3),
                "ratio": round(eng_fps / raw_fps, 3),
                "instances": len(raw.tracks),
                "timings": raw.timings,
                "yolo": arch,
            }
        )
    )

    peaks = {}
    for name, n in (("short", short_n), ("long", long_n)):
        long_scene = Frames(n, h, w, fps)
        det.scene = long_scene
        peak_reset(device)
        backend.track(long_scene, det)
        peaks[name] = peak_mb(device)
    print(
        json.dumps(
            {
                "bench": "gpu_prompt",
                "measure": "memory",
                "device": gpu,
                "frames": [short_n, long_n],
                "peak_mb": peaks,
                "ratio": round(peaks["long"] / peaks["short"], 3),
                "window": sam2.window,
                "note": "CPU dry run reports process peak RSS"
                if not device.startswith("cuda")
                else "torch.cuda.max_memory_allocated",
            }
        )
    )


if __name__ == "__main__":
    main()
