"""`stvg ground` on a synthetic benchmark video with the embedded champion, one video and a batch.

Real prompting (the trained detector, the CPU backend, params.yaml), a real policy whose answer is
known (``conftest.scripted_policy``: ID 1, 1.00-4.00 s), the real mask database and mp4 writer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from flows import cli
from stvg.prompting.maskdb import MaskDB
from tests.grounding.conftest import ANSWER_ID, ANSWER_SPAN, BenchmarkVideo

pytestmark = pytest.mark.slow


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])  # RGB
    cap.release()
    return frames


def _green(frame: np.ndarray, box: list[float]) -> float:
    """Share of greenish pixels on the box's top edge (the answered tube is drawn in green)."""
    x1, y1, x2, _ = (round(v) for v in box)
    edge = frame[max(0, y1 - 1) : y1 + 2, max(0, x1) : x2 + 1].reshape(-1, 3).astype(int)
    return float(
        np.mean((edge[:, 1] > 150) & (edge[:, 1] - edge[:, 0] > 60) & (edge[:, 1] - edge[:, 2] > 60))
    )


def test_ground_writes_result_tube_and_annotated_video(
    champion_bundle: Path, benchmark_video: BenchmarkVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["ground", str(benchmark_video.path), benchmark_video.sentence, "--model", str(champion_bundle)]
    assert cli.main([*argv, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())

    assert result["ok"] and result["error"] == ""
    assert (result["target_id"], result["start_s"], result["end_s"]) == (ANSWER_ID, *ANSWER_SPAN)
    assert result["query"] == benchmark_video.sentence and "Target ID: 1" in result["answer"]
    assert (result["fps"], result["n_frames"], result["width"], result["height"]) == (10.0, 80, 320, 240)
    assert ANSWER_ID in result["instances"]
    assert {"decode_s", "prompt_s", "policy_s", "tube_s", "render_s", "load_s"} <= set(result["timings"])
    assert len(result["model"]["bundle"]) == 16

    # The tube is the mask database's tube of the answered ID over the answered span, frame for frame.
    db = MaskDB(out / "maskdb")
    expected = db.tube(result["video_id"], ANSWER_ID, *ANSWER_SPAN)
    assert expected, "the answered instance has no frames in the span"
    tube = {int(f): box for f, box in result["tube"].items()}
    assert tube.keys() == expected.keys()
    for f, box in tube.items():
        assert box == pytest.approx(expected[f], abs=0.01)
        assert ANSWER_SPAN[0] <= f / result["fps"] <= ANSWER_SPAN[1]
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"ID 1, 1.00–4.00 s, {len(expected)} frames, result in {out}"

    # The annotated video has every raw frame, and the answered box (green) only on the tube's frames.
    frames, raw = _frames(out / "annotated.mp4"), _frames(benchmark_video.path)
    assert len(frames) == len(raw) == benchmark_video.n_frames and frames[0].shape == (240, 320, 3)
    first = min(tube)
    assert _green(frames[first], tube[first]) - _green(raw[first], tube[first]) > 0.5
    before = first - 5  # before the span: no answered box drawn there
    assert abs(_green(frames[before], tube[first]) - _green(raw[before], tube[first])) < 0.2


def test_ground_reuses_the_prompted_video_and_reports_an_unusable_answer(
    champion_bundle: Path, benchmark_video: BenchmarkVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "ground",
        str(benchmark_video.path),
        "the red square",
        "--model",
        str(champion_bundle),
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--max-new-tokens", "1"]) == 1  # the answer is cut to its first token
    result = json.loads((out / "result.json").read_text())
    assert not result["ok"] and result["answer"] == "<think" and result["tube"] == {}
    assert "not parsable" in result["error"]
    assert result["timings"]["prompt_s"] == 0.0  # the video's entry was reused, not prompted again
    assert capsys.readouterr().out.strip().startswith("no grounding: the policy's answer is not parsable")
    assert len(_frames(out / "annotated.mp4")) == benchmark_video.n_frames


def test_ground_refuses_bad_input_with_a_clear_line(
    champion_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    model = ["--model", str(champion_bundle), "--out", str(tmp_path / "out")]
    assert cli.main(["ground", str(garbage), "the red square", *model]) == 2
    assert f"video {garbage} is not a decodable video" in capsys.readouterr().err
    assert cli.main(["ground", str(tmp_path / "missing.mp4"), "x", *model]) == 2
    assert "not found" in capsys.readouterr().err
    assert (
        cli.main(["ground", str(garbage), "x", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    )
    assert "cannot load the model" in capsys.readouterr().err
    assert not (tmp_path / "out" / "result.json").exists()


def test_batch_isolates_failures_lists_them_and_resumes(
    champion_bundle: Path, benchmark_video: BenchmarkVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(benchmark_video.path, videos / "clip.mp4")
    corrupt = videos / "corrupt.mp4"
    corrupt.write_bytes(benchmark_video.path.read_bytes()[:3000])  # a cut-off upload
    lines = [
        {"video": "videos/clip.mp4", "query": benchmark_video.sentence},
        {"video": "videos/corrupt.mp4", "query": "the red square"},
        {"video": str(videos / "clip.mp4"), "query": "the blue circle", "id": "second"},
        "this is not json",
        {"video": "videos/missing.mp4", "query": "x"},
        {"video": "videos/clip.mp4", "query": "   "},
    ]
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    out = tmp_path / "out"
    argv = ["ground", "--batch", str(queries), "--model", str(champion_bundle), "--out", str(out)]

    assert cli.main(argv) == 1
    printed = capsys.readouterr().out
    assert "batch: 2 answered, 0 already done, 4 failed of 6 items" in printed
    results = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    assert [r["line"] for r in results] == [1, 3] and results[1]["id"] == "second"
    assert all(r["ok"] and r["target_id"] == ANSWER_ID for r in results)
    assert results[0]["tube"] == results[1]["tube"]  # one video, prompted once, the same tube
    assert results[1]["timings"]["prompt_s"] == 0.0
    failures = {
        f["line"]: f["error"] for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())
    }
    assert set(failures) == {2, 4, 5, 6}
    assert "corrupt.mp4 is not a decodable video" in failures[2]
    assert "not a JSON line" in failures[4]
    assert "missing.mp4 not found" in failures[5]
    assert "query is empty" in failures[6]
    assert "line 2: GroundingInputError" in printed

    # A re-run skips what was answered and retries what failed; a repaired video is answered then.
    shutil.copy(benchmark_video.path, corrupt)
    assert cli.main(argv) == 1
    assert "batch: 1 answered, 2 already done, 3 failed of 6 items" in capsys.readouterr().out
    results = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in results) == [1, 2, 3]

    # A run killed while writing leaves a cut-off last line: it is dropped and that item redone.
    text = (out / "results.jsonl").read_text()
    (out / "results.jsonl").write_text(text[: len(text) - 40])
    assert cli.main(argv) == 1
    assert "batch: 1 answered, 2 already done, 3 failed" in capsys.readouterr().out
    results = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in results) == [1, 2, 3]
