"""The worker side of the prompt stage: an entry is staged complete under its key or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from stvg.config import params_from_dict
from stvg.prompting.executors import Job, LocalExecutor, PromptWorker, pack_entry, staging_dir, unpack_entry
from stvg.prompting.maskdb import SAMPLED, SUMMARY, TABLE
from tests.stages.test_prompt_determinism import BoxDetector, write_clips


def test_staging_is_inside_the_database_unless_a_shared_folder_is_set(tmp_path: Path) -> None:
    local = params_from_dict({})
    assert staging_dir(local, tmp_path / "prompt") == tmp_path / "prompt" / ".staging"
    shared = params_from_dict({"prompt": {"executor": "ray", "ray": {"staging": str(tmp_path / "shared")}}})
    a, b = staging_dir(shared, tmp_path / "a" / "prompt"), staging_dir(shared, tmp_path / "b" / "prompt")
    assert a.parent == b.parent == tmp_path / "shared" and a != b, "two databases never share a folder"
    shipped = params_from_dict(
        {
            "prompt": {
                "executor": "ray",
                "ray": {"staging": str(tmp_path / "shared"), "transfer": "object_store"},
            }
        }
    )
    assert staging_dir(shipped, tmp_path / "prompt") == tmp_path / "prompt" / ".staging", "entries come home"


def test_a_worker_stages_complete_entries_under_their_key_and_returns_failures(tmp_path: Path) -> None:
    clip = write_clips(tmp_path / "videos", n=1)[0]
    broken = tmp_path / "videos" / "broken.mp4"
    broken.write_bytes(b"not a video")
    params = params_from_dict({"prompt": {"repair": {"min_track_frames": 2}}})
    staging = tmp_path / "staging"
    executor = LocalExecutor(params, tmp_path / "w.pt", "cpu", staging, BoxDetector("w.pt"))
    jobs = [Job("clip", str(clip), "a" * 64), Job("broken", str(broken), "b" * 64)]
    good, bad = executor.run(jobs)
    assert Path(good.staged) == staging / ("a" * 64) and not good.error
    assert {TABLE, SUMMARY, SAMPLED} <= {p.name for p in Path(good.staged).iterdir()}
    assert good.tracked_frames > 0 and good.timings["total_s"] > 0
    assert bad.staged == "" and "broken.mp4" in bad.error and "VideoError" in bad.error
    assert sorted(p.name for p in staging.iterdir()) == ["a" * 64], "no temporary folder left behind"


def test_an_unwritable_staging_folder_fails_the_video_with_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    params = params_from_dict({})
    executor = LocalExecutor(params, tmp_path / "w.pt", "cpu", blocker / "staging", BoxDetector("w.pt"))
    (outcome,) = executor.run([Job("clip", str(tmp_path / "x.mp4"), "c" * 64)])
    assert "cannot write to the staging folder" in outcome.error and "prompt.ray.staging" in outcome.error


def test_a_shipped_video_comes_back_as_the_same_entry_and_leaves_nothing_on_the_worker(
    tmp_path: Path,
) -> None:
    """``transfer: object_store``: the worker gets bytes, not a path, and returns the entry's files."""
    clip = write_clips(tmp_path / "videos", n=1)[0]
    params = params_from_dict({"prompt": {"repair": {"min_track_frames": 2}}})
    by_path = PromptWorker(params, "w.pt", "cpu", str(tmp_path / "staging"), BoxDetector("w.pt"))
    expected = by_path.run(Job("clip", str(clip), "a" * 64))
    worker = PromptWorker(params, "w.pt", "cpu", "", BoxDetector("w.pt"))  # "": its own scratch folder
    shipped = worker.run_shipped(Job("clip", "/not/on/this/node/clip.mp4", "a" * 64), clip.read_bytes())
    assert not shipped.error and shipped.staged == "" and shipped.files
    left = [p.name for p in worker.staging.iterdir() if "a" * 12 in p.name]
    assert left == [], "neither the video nor the entry stays on the worker's node"
    back = unpack_entry(shipped.files, tmp_path / "driver", "a" * 64)
    assert back == tmp_path / "driver" / ("a" * 64)
    assert pack_entry(back) == pack_entry(Path(expected.staged)), "byte-identical to the entry built by path"
    assert sorted(p.name for p in back.parent.iterdir()) == ["a" * 64], "no temporary folder left behind"


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", "a\\..\\b", ""])
def test_a_shipped_entry_cannot_write_outside_its_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a relative path inside it"):
        unpack_entry({"table.parquet": b"ok", name: b"x"}, tmp_path / "staging", "k" * 64)
    assert list((tmp_path / "staging").iterdir()) == [], "nothing half-written stays"
    assert not (tmp_path / "escape.txt").exists()
