"""The prompt stage on a Ray cluster, run by ``test_prompt_ray.py`` inside a loopback-only namespace.

    python -m tests.stages.ray_prompt_runs FOLDER     # FOLDER holds clips/, weights.pt, params.yaml

One Ray head for all runs; every run is a fresh driver process (``stvg prompt`` with the scripted
box detector, shipped to the workers), as DVC would start it. Writes FOLDER/results.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.raycluster import RayHead, project_env
from tests.stages.test_prompt_determinism import BoxDetector, tree_hash


class DyingDetector(BoxDetector):
    """A box detector whose process dies (``os._exit``) on frames ``die_width`` wide: once, or always."""

    def __init__(self, weights, marker_dir: str = "", die_once: int = 0, die_always: int = 0, **kw):
        super().__init__(weights, **kw)
        self.marker_dir, self.die_once, self.die_always = Path(marker_dir), die_once, die_always

    def detect_with_masks(self, frames, frame_indices=None):
        width = frames[0].shape[1] if len(frames) else 0
        if width == self.die_always:
            os._exit(17)
        marker = self.marker_dir / f"died-{width}"
        if width == self.die_once and not marker.exists():
            marker.touch()
            os._exit(17)
        return super().detect_with_masks(frames, frame_indices)


def drive(argv: list[str]) -> int:
    """``stvg prompt`` with a detector the workers receive (argv[0]: the detector's JSON settings)."""
    from stvg.stages import prompt as stage

    settings = json.loads(argv[0])
    detector = DyingDetector("weights.pt", **settings) if settings else BoxDetector("weights.pt")
    return stage.main(argv[1:], detector=detector)


def stage_process(folder: Path, params: Path, out: str, videos: list[Path], detector: dict | None = None):
    code = "import sys; from tests.stages.ray_prompt_runs import drive; sys.exit(drive(sys.argv[1:]))"
    argv = ["--params", str(params), "--detector", str(folder / "weights.pt"), "--out", str(folder / out)]
    command = [sys.executable, "-c", code, json.dumps(detector or {}), *argv, "--videos", *map(str, videos)]
    return subprocess.Popen(
        command, env=project_env(), cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finished(folder: Path, out: str, process: subprocess.Popen) -> dict:
    log = process.communicate()[0].decode(errors="replace")
    result = {"rc": process.returncode, "log": log[-4000:]}
    if (folder / out / "summary.json").is_file():
        result["summary"] = json.loads((folder / out / "summary.json").read_text())
        result["report"] = json.loads((folder / "run_info" / f"{out}.json").read_text())
        result["hash"] = tree_hash(folder / out)
    return result


def ray_params(folder: Path, name: str, address: str, prompt: dict | None = None, **ray: object) -> Path:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params.setdefault("prompt", {}).update(
        {"executor": "ray", "ray": {"address": address, **ray}, **(prompt or {})}
    )
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def killed_then_resumed(folder: Path, params: Path, clips: list[Path]) -> dict:
    """SIGKILL the driver once an entry is in, then run again to completion."""
    process = stage_process(folder, params, "killed", clips)
    index = folder / "killed" / "index.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if index.is_file() and json.loads(index.read_text())["entries"]:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = len(json.loads(index.read_text())["entries"]) if index.is_file() else 0
    time.sleep(2.0)  # the cluster notices the driver is gone and ends its actors
    return {
        "entries_before": before,
        **finished(folder, "killed", stage_process(folder, params, "killed", clips)),
    }


def replicas_vs_one_process(folder: Path, address: str) -> dict:
    """The evaluate stage's generation over the Ray run's database: 1 process, then 2 policy replicas."""
    from stvg.config import params_from_dict
    from stvg.prompting.maskdb import MaskDB
    from stvg.records import Sample
    from stvg.stages.evaluate import policy_answers
    from stvg.training.policy import build_tiny_policy, save_policy

    one = params_from_dict({"evaluate": {"device": "cpu", "batch_size": 2, "max_new_tokens": 12}})
    model, processor = build_tiny_policy(one.train.tiny)
    save_policy(model, processor, folder / "policy")
    db = MaskDB(folder / "ray")
    queries = ("the red shape moving left", "which object stops near the edge?")
    samples = [
        Sample(f"{vid}:{q}", "hcstvg", vid, q, 10.0, 30, 160, 120, video_id=vid)
        for vid in db.video_ids()
        for q in queries
    ]
    two = params_from_dict(
        {
            "evaluate": {
                "device": "cpu",
                "batch_size": 2,
                "max_new_tokens": 12,
                "replicas": 2,
                "ray": {"address": address},
            }
        }
    )
    return {
        "one": policy_answers(one, samples, db, folder / "policy", "cpu"),
        "two": policy_answers(two, samples, db, folder / "policy", "cpu"),
    }


def main(folder: Path) -> None:
    clips = sorted((folder / "clips").glob("clip*.mp4"))
    faults = [clips[0], folder / "clips" / "poison.mp4", folder / "clips" / "dies_once.mp4"]
    faults.append(folder / "clips" / "dies_always.mp4")
    results: dict = {}
    local = stage_process(folder, folder / "params.yaml", "local", clips)
    results["local"] = finished(folder, "local", local)
    with RayHead(num_cpus=2) as head:
        two = ray_params(folder, "ray2", head.address, max_in_flight=2, recycle_every=1)
        results["ray"] = finished(folder, "ray", stage_process(folder, two, "ray", clips))
        unshared = str(folder / "shared_staging")  # transfer object_store never writes there
        shipped = ray_params(
            folder, "shipped", head.address, max_in_flight=2, transfer="object_store", staging=unshared
        )
        results["shipped"] = finished(folder, "shipped", stage_process(folder, shipped, "shipped", clips))
        results["shipped"]["shared_staging_used"] = Path(unshared).exists()
        retry = ray_params(folder, "retry", head.address, max_in_flight=2, max_retries=1)
        dying = {"marker_dir": str(folder), "die_once": 176, "die_always": 192}
        results["faults"] = finished(folder, "faults", stage_process(folder, retry, "faults", faults, dying))
        cuda = ray_params(folder, "cuda", head.address, {"device": "cuda"}, max_in_flight=1)
        results["no_gpu"] = finished(folder, "no_gpu", stage_process(folder, cuda, "no_gpu", clips[:1]))
        one = ray_params(folder, "ray1", head.address, max_in_flight=1)
        results["killed"] = killed_then_resumed(folder, one, clips)
        results["evaluate"] = replicas_vs_one_process(folder, head.address)
    (folder / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
