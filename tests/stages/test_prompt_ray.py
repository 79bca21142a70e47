"""The prompt stage's ``ray`` executor and the evaluation's policy replicas on a one-node Ray cluster
inside a loopback-only network namespace.

One Ray head serves every run of the module (``ray_prompt_runs``); each run is a fresh driver
process. The scripted box detector travels to the workers, so the CPU backend's whole path runs there.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stvg.config import SyntheticParams
from tests.raycluster import inside_loopback_namespace, namespace_unavailable
from tests.stages.test_prompt_determinism import CLIP, write_clips

pytestmark = pytest.mark.slow


def write_clip(path: Path, width: int) -> None:
    """A synthetic clip ``width`` pixels wide (the dying detector picks its victims by width)."""
    from dataclasses import replace

    from stvg.data.synthetic import build_video

    clip: SyntheticParams = replace(CLIP, width=width)
    video = build_video(clip, "val", 7)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (clip.width, clip.height))
    for frame in video.frames:
        vw.write(np.ascontiguousarray(frame[..., ::-1]))
    vw.release()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    reason = namespace_unavailable()
    if reason:
        pytest.skip(f"Ray runs only inside a loopback-only network namespace: {reason}")
    folder = tmp_path_factory.mktemp("ray")
    write_clips(folder / "clips", n=3)
    write_clip(folder / "clips" / "dies_once.mp4", 176)
    write_clip(folder / "clips" / "dies_always.mp4", 192)
    (folder / "clips" / "poison.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    (folder / "weights.pt").write_bytes(b"scripted detector")
    params = {"prompt": {"repair": {"min_track_frames": 2}}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    done = inside_loopback_namespace("tests.stages.ray_prompt_runs", str(folder))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((folder / "results.json").read_text())


def test_ray_and_local_executors_give_byte_identical_databases(runs: dict) -> None:
    local, ray = runs["local"], runs["ray"]
    assert local["rc"] == 0 and ray["rc"] == 0, ray["log"]
    assert (local["report"]["executor"], ray["report"]["executor"]) == ("local", "ray")
    assert ray["report"]["workers"] == 2 and ray["report"]["processed"] == 3
    assert ray["report"]["actors_started"] == 3, (
        "recycle_every: 1 replaced the actor that took a second video"
    )
    assert ray["summary"] == local["summary"] and ray["summary"]["in_database"] == 3
    assert ray["hash"] == local["hash"], "same bytes, so the same DVC output hash"


def test_entries_shipped_through_the_object_store_equal_the_local_ones(runs: dict) -> None:
    """``prompt.ray.transfer: object_store``: no path is shared with the workers, same bytes."""
    local, shipped = runs["local"], runs["shipped"]
    assert shipped["rc"] == 0, shipped["log"]
    assert shipped["report"]["transfer"] == "object_store" and shipped["report"]["processed"] == 3
    assert not shipped["shared_staging_used"], "the workers wrote nothing to the configured staging folder"
    assert shipped["hash"] == local["hash"]


def test_a_poisoned_video_and_a_dying_worker_leave_the_rest_complete(runs: dict) -> None:
    faults = runs["faults"]
    assert faults["rc"] == 0, faults["log"]
    failures = {f["video_id"]: f["error"] for f in faults["summary"]["failures"]}
    assert set(failures) == {"poison.mp4", "dies_always.mp4"}
    assert "died" in failures["dies_always.mp4"] and "2 attempts" in failures["dies_always.mp4"]
    assert "died" not in failures["poison.mp4"], "a video that raises is not retried"
    report = faults["report"]
    assert report["processed"] == 2 and faults["summary"]["in_database"] == 2, "clip0 and the retried one"
    assert report["retries"] == {"dies_once.mp4": 1, "dies_always.mp4": 2}


def test_a_worker_that_cannot_start_stops_the_run_with_its_error(runs: dict) -> None:
    """CUDA asked for on a cluster without GPUs: the workers' own check, reported once, exit 2."""
    no_gpu = runs["no_gpu"]
    assert no_gpu["rc"] == 2 and "summary" not in no_gpu
    assert "a prompt worker could not start" in no_gpu["log"] and "prompt.device: cuda" in no_gpu["log"]


def test_a_killed_driver_resumes_with_only_the_missing_videos(runs: dict) -> None:
    killed, whole = runs["killed"], runs["ray"]
    assert 0 < killed["entries_before"] < 3, "the driver was killed mid-run"
    assert killed["rc"] == 0, killed["log"]
    assert killed["report"]["processed"] == 3 - killed["entries_before"]
    assert killed["report"]["reused"] == killed["entries_before"]
    assert killed["hash"] == whole["hash"], "the resumed database equals an uninterrupted run's"


def test_evaluation_on_two_policy_replicas_equals_one_process(runs: dict) -> None:
    one, two = runs["evaluate"]["one"], runs["evaluate"]["two"]
    assert len(one) == 6 and any(one), "the tiny policy answered every sample"
    assert two == one, "greedy answers do not depend on the number of replicas"
