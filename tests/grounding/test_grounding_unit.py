"""The pure parts of grounding on hand-made inputs: answer -> tube, drawing, batch files, results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from stvg.grounding.annotate import TARGET, draw_frame
from stvg.grounding.batch import done_keys, item_key, read_items
from stvg.grounding.grounder import resolve_answer
from stvg.grounding.result import GroundingResult

BOXES = {f: {1: (10.0 + f, 20.0, 40.0 + f, 50.0), 2: (100.0, 100.0, 140.0, 150.0)} for f in range(30)}


class FakeEntry:
    """A prompted video's entry as the mask database answers: two instances on frames 0..29 at 10 fps."""

    def instance_ids(self) -> list[int]:
        return [1, 2]

    def tube(self, instance_id: int, start_s: float, end_s: float) -> dict[int, tuple[float, ...]]:
        return {f: b[instance_id] for f, b in BOXES.items() if start_s <= f / 10 <= end_s}


def _result(answer: str) -> GroundingResult:
    return GroundingResult(video="v.mp4", video_id="abc", query="q", answer=answer, ok=False, fps=10.0, n_frames=30,
                           width=200, height=160)  # fmt: skip


def test_a_parsable_answer_naming_an_instance_gets_its_tube_over_the_span() -> None:
    r = resolve_answer(
        _result("<think>x</think><answer>Target ID: 1, Time range: 0.50 to 1.20</answer>"), FakeEntry()
    )
    assert r.ok and r.error == "" and (r.target_id, r.start_s, r.end_s) == (1, 0.5, 1.2)
    assert sorted(r.tube) == list(range(5, 13)) and r.tube[5] == BOXES[5][1]
    assert r.instances == (1, 2)
    assert r.summary_line("out") == "ID 1, 0.50–1.20 s, 8 frames, result in out"
    record = r.to_dict()
    assert record["tube"]["5"] == [15.0, 20.0, 45.0, 50.0] and json.dumps(record)


def test_unusable_answers_keep_the_text_and_say_why() -> None:
    cut = resolve_answer(_result("<think"), FakeEntry())
    assert not cut.ok and cut.tube == {} and "not parsable (no <answer> block)" in cut.error
    assert cut.to_dict()["start_s"] is None and cut.summary_line("d").startswith("no grounding: the policy")
    absent = resolve_answer(_result("<answer>Target ID: 7, Time range: 0.00 to 1.00</answer>"), FakeEntry())
    assert not absent.ok and absent.target_id == 7 and "ID 7, which is no instance" in absent.error
    assert "(its IDs: 1, 2)" in absent.error and absent.tube == {}


def test_drawing_marks_the_answer_only_on_its_frames_and_leaves_the_input_alone() -> None:
    r = resolve_answer(_result("<answer>Target ID: 1, Time range: 0.50 to 1.20</answer>"), FakeEntry())
    frame = np.zeros((160, 200, 3), np.uint8)
    inside, before = draw_frame(frame, 8, r, BOXES[8]), draw_frame(frame, 2, r, BOXES[2])
    assert not frame.any()  # the decoded frame is not drawn on in place
    x1, y1, x2, _ = (round(v) for v in BOXES[8][1])
    assert (inside[y1, x1 + 5 : x2 - 5] == TARGET).all()  # the answered box, in full colour
    assert not (before[20, 15:40] == TARGET).all(axis=1).any()  # not before the span
    faint = inside[100, 110:130]  # instance 2's top edge: drawn, but blended
    assert faint.max() > 0 and faint.max() < 210
    bar = inside[-3]  # the timeline: the span (0.5-1.2 s of 3 s) green, the current time (0.8 s) white
    assert (bar[36:50] == TARGET).all() and (bar[56:78] == TARGET).all() and (bar[53] == 255).all()
    assert not (bar[90:190] == TARGET).all(axis=1).any()


def test_batch_lines_failures_and_a_cut_off_results_file(tmp_path: Path) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"video": "a.mp4", "query": "x"}\n\n{"video": 3}\nnot json\n{"video": "/abs/b.mp4", "query": "y", "id": 7}\n'
    )
    items, failures = read_items(queries)
    assert [(i.line, i.video, i.key) for i in items] == [
        (1, tmp_path / "a.mp4", item_key({"video": "a.mp4", "query": "x"})),
        (5, Path("/abs/b.mp4"), "7"),
    ]
    assert [f["line"] for f in failures] == [3, 4] and "not a JSON line" in failures[1]["error"]
    assert item_key({"video": "a.mp4", "query": "x"}) != item_key({"video": "a.mp4", "query": "z"})

    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "a", "ok": true}\n{"id": "b", "ok": tr')
    assert done_keys(results) == {"a"}
    assert results.read_text() == '{"id": "a", "ok": true}\n'  # rewritten without the cut-off line
    assert done_keys(tmp_path / "none.jsonl") == set()


@pytest.mark.parametrize("span", [(math.nan, 1.0), (0.0, math.inf)])
def test_non_finite_times_never_reach_json(span: tuple[float, float]) -> None:
    record = GroundingResult("v", "id", "q", "a", False, start_s=span[0], end_s=span[1]).to_dict()
    assert json.loads(json.dumps(record, allow_nan=False))["start_s"] in (None, 0.0)
