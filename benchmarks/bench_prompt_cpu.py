"""CPU backend speed: tracked frames/s of whole prompting (decode-free) on synthetic 320x240 videos.

    .venv/bin/python benchmarks/bench_prompt_cpu.py [--weights artifacts/detector/weights.pt] [--videos 2]

Prints one JSON object per measurement, with the settings of params.yaml (the embedded default:
the synthetic_cpu backend: GrabCut masks, BoT-SORT with colour ReID, repair, track-end
extension, rendering). Target: >= 20
frames/s on 2 cores. Without trained weights a
random-weight yolov8n of the same architecture is timed (detections then are few, so association and
rendering costs are under-counted: the record says which weights were used).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from stvg.env import configure_environment


def main() -> None:
    configure_environment()
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="artifacts/detector/weights.pt")
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", default="params.yaml", help="prompt / detector / synthetic settings")
    args = ap.parse_args()

    import torch

    from stvg.config import load_params
    from stvg.data.synthetic import build_video
    from stvg.prompting.backends import build_backend
    from stvg.prompting.detector import YoloDetector
    from stvg.prompting.engine import prompt_video
    from stvg.prompting.video import ArrayFrames

    torch.set_num_threads(args.threads)
    weights = Path(args.weights)
    kind = "trained"
    if not weights.is_file():
        from ultralytics import YOLO

        kind = "random-yolov8n"
        weights = Path(tempfile.mkdtemp()) / "random.pt"
        YOLO("yolov8n.yaml").save(str(weights))
    params = load_params(args.params)
    sp, p, d = params.synthetic, params.prompt, params.detector
    detector = YoloDetector(weights, conf=d.conf, imgsz=d.imgsz, threads=args.threads)
    backend = build_backend(p)
    for i in range(args.videos + 1):  # the first run warms the model up and is not reported
        video = build_video(sp, "val", i)
        t0 = time.perf_counter()
        try:
            r = prompt_video(
                ArrayFrames(video.frames, fps=sp.fps), p, detector, backend=backend, video_id=video.name
            )
            timings, instances = r.timings, r.summary["instances"]
        except RuntimeError as exc:  # random weights may detect nothing
            timings, instances = {"error": str(exc)[:80]}, 0
        wall = time.perf_counter() - t0
        n = len(video.frames)
        if i == 0:
            continue
        print(
            json.dumps(
                {
                    "bench": "prompt_cpu",
                    "video": video.name,
                    "weights": kind,
                    "frames": n,
                    "size": [sp.width, sp.height],
                    "frames_per_s": round(n / wall, 2),
                    "instances": instances,
                    "threads": args.threads,
                    "timings": timings,
                }
            )
        )


if __name__ == "__main__":
    main()
