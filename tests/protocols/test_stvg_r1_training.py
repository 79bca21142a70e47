"""The official STVG-R1 training-side rules against their restatement in tests/reference: the answer
parser and rewards (``grpo_video.py``), the query normalisation, and label voting
(``trainjson.py``), each on a few hundred random and edge cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from stvg.config import LabelParams
from stvg.labels.voting import label_frame_shift, vote_target
from stvg.training.answer import has_valid_format, parse_answer
from stvg.training.rewards import build_reward_funcs, format_reward, object_reward, tiou_reward
from stvg.training.template import normalize_query
from tests.reference import stvg_r1 as ref

NUMBERS = ["5", "5.", "5.00", "5.00.", "12.54", "0", "007.5", "-3", "+3", "1e2", "2.5.1", "9" * 400, "17.83s"]
IDS = ["2", "2.", "2.5", "[2]", "-2", "02", "two", "3,", "1234567"]
ID_LABELS = ["Target ID:", "target id:", "TARGET ID:", "Target ID :", "Target ID", "Target id=", "Object ID:"]
RANGE_LABELS = ["Time range:", "time range:", "TIME RANGE:", "Time range :", "Time range", "Time:"]
SEPARATORS = [" to ", " and ", " - ", "to", " TO ", " until ", "  and\n"]
TAGS = [("<answer>", "</answer>"), ("<ANSWER>", "</ANSWER>"), ("<answer>", ""), ("<Answer>", "</answer>")]


def _random_answer(rng: np.random.Generator) -> str:
    """A completion built from the official format's pieces, correct or mangled."""
    parts = []
    if rng.random() < 0.8:
        parts.append(f"{rng.choice(ID_LABELS)} {rng.choice(IDS)}")
    if rng.random() < 0.85:
        start, end = rng.choice(NUMBERS, 2)
        parts.append(f"{rng.choice(RANGE_LABELS)} {start}{rng.choice(SEPARATORS)}{end}")
    if rng.random() < 0.2:
        parts.reverse()
    body = str(rng.choice([", ", ". ", "\n", " "])).join(parts) + str(rng.choice(["", ".", " ", "!"]))
    open_tag, close_tag = TAGS[int(rng.integers(len(TAGS)))] if rng.random() < 0.9 else ("", "")
    text = f"{open_tag}{body}{close_tag}"
    if rng.random() < 0.3:  # an earlier answer block, or a second one after
        other = "<answer>Target ID: 9, Time range: 1.00 to 2.00</answer>"
        text = f"{other} {text}" if rng.random() < 0.5 else f"{text} {other}"
    if rng.random() < 0.7:
        think = str(
            rng.choice(["<think>reasoning</think>", "<think>a\nb</think>\n", "<THINK>x</THINK>", "<think>x"])
        )
        text = think + str(rng.choice(["", " ", "\n"])) + text
    return str(rng.choice(["", " ", "Sure! "])) + text + str(rng.choice(["", "\n", " thanks"]))


@pytest.fixture(scope="module")
def answers() -> list[str]:
    rng = np.random.default_rng(1409)
    fixed = [
        "<answer>Target ID: 2, Time range: 5.00 to 11.00.</answer>",
        "<answer>Target ID: 2. Time range: 5.00 to 11.00</answer>",
        "<answer>Target ID: 2, Time range: 5. to 11.</answer>",
        "<answer>Target ID: 2</answer>",
        "<think>t</think><answer>Target ID: 2, Time range: 11 to 5</answer>",
    ]
    return fixed + [_random_answer(rng) for _ in range(600)]


def test_the_parser_reads_exactly_what_the_official_one_reads(answers: list[str]) -> None:
    agree_ok = 0
    for text in answers:
        want = ref.parse(text)
        got = parse_answer(text)
        assert got.ok == (want[0] is not None), (text, got, want)
        if got.ok:
            agree_ok += 1
            assert (got.target_id, got.start_s, got.end_s) == want, text
    assert 100 <= agree_ok <= len(answers) - 100  # both outcomes well represented


def test_rewards_equal_the_official_iou_and_format_rewards(answers: list[str]) -> None:
    rng = np.random.default_rng(7)
    n = len(answers)
    gt_id = rng.integers(0, 12, n).tolist()
    gs = rng.uniform(0, 15, n)
    ge = gs + rng.uniform(0.5, 10, n)
    want = [ref.iou_reward_parts(t, i, s, e) for t, i, s, e in zip(answers, gt_id, gs, ge, strict=True)]
    assert tiou_reward(answers, start_s=gs.tolist(), end_s=ge.tolist()) == pytest.approx(
        [w[0] for w in want], abs=1e-12
    )
    assert object_reward(answers, target_id=gt_id) == [w[1] for w in want]
    assert format_reward(answers) == [ref.format_reward(t) for t in answers]
    assert [has_valid_format(t) for t in answers] == [ref.format_reward(t) == 1.0 for t in answers]
    funcs, weights = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 1.0})
    cols = {"start_s": gs.tolist(), "end_s": ge.tolist(), "target_id": gt_id}
    total = np.sum([w * np.asarray(f(answers, **cols)) for f, w in zip(funcs, weights, strict=True)], axis=0)
    official = [sum(w) + ref.format_reward(t) for w, t in zip(want, answers, strict=True)]
    np.testing.assert_allclose(total, official, atol=1e-12)  # the official iou + format, max 3


def test_an_id_without_a_range_earns_nothing_unless_asked() -> None:
    """Bug 2: the official parser fails the whole answer, so the ID reward is 0 too."""
    text = "<answer>Target ID: 2</answer>"
    assert ref.iou_reward_parts(text, 2, 1.0, 2.0) == (0.0, 0.0)
    assert object_reward([text], target_id=[2]) == [0.0]
    assert object_reward([text], target_id=[2], id_needs_time=False) == [1.0]


def test_query_normalisation_is_the_training_scripts() -> None:
    rng = np.random.default_rng(3)
    words = ["The", "man", "IN", "grey", ".", "..", " ", "\t", "waves.", "Woman", "?"]
    for _ in range(300):
        sentence = "".join(
            str(w) + str(rng.choice(["", " "])) for w in rng.choice(words, int(rng.integers(1, 8)))
        )
        assert normalize_query(sentence) == ref.normalize_sentence(sentence), repr(sentence)


# ----------------------------------------------------------------------------------------------- voting

OFFICIAL_BARE = LabelParams(min_vote_share=0.0, flag_vote_share=0.0, min_mean_iou=0.0, min_presence=0.0)


def _vote_case(rng: np.random.Generator) -> tuple[dict, dict[int, dict[int, list[int]]], int]:
    """(annotation, last-pixel masks per frame, n_frames): instances near and far from the GT box,
    twins with identical boxes (frame ties) and runs that split the frames (vote ties)."""
    n = int(rng.integers(5, 80))
    length = int(rng.integers(1, n + 1))
    st = int(rng.integers(1, n - length + 2))
    bbox = []
    for _ in range(length):
        w, h = int(rng.integers(4, 40)), int(rng.integers(4, 40))
        bbox.append([int(rng.integers(0, 100)), int(rng.integers(0, 60)), w, h])
    masks: dict[int, dict[int, list[int]]] = {f: {} for f in range(n)}
    twins = rng.random() < 0.3
    for f in range(n):
        k = f - st
        for instance in range(1, int(rng.integers(1, 5)) + 1):
            if rng.random() < 0.25:
                continue
            if 0 <= k + 1 < length + 1 and rng.random() < 0.6:
                x, y, w, h = bbox[min(max(k, 0), length - 1)]
                d = int(rng.integers(-4, 5))
                box = [x + d, y, x + w - 1 + d, y + h - 1]
            else:
                x, y = int(rng.integers(0, 120)), int(rng.integers(0, 80))
                box = [x, y, x + int(rng.integers(0, 30)), y + int(rng.integers(0, 30))]
            masks[f][instance] = box
            if twins and instance == 1:
                masks[f][2] = list(box)
    entry = {"st_frame": st, "bbox": bbox}
    return entry, masks, n


def test_label_voting_picks_the_official_winner() -> None:
    rng = np.random.default_rng(77)
    shift = label_frame_shift("hcstvg-v2", OFFICIAL_BARE.frame_alignment)
    decided = 0
    for case in range(400):
        entry, masks, n = _vote_case(rng)
        gt = {entry["st_frame"] - 1 + k: (x, y, x + w, y + h) for k, (x, y, w, h) in enumerate(entry["bbox"])}
        tracks = {
            f: {i: (b[0], b[1], b[2] + 1.0, b[3] + 1.0) for i, b in objs.items()}  # mask_to_box: +1
            for f, objs in masks.items()
            if objs
        }
        got = vote_target(gt, tracks, OFFICIAL_BARE, shift, n, tracked=range(n))
        want = ref.vote(entry, masks)
        assert got.target_id == want, (case, got.votes, want)
        decided += want is not None
    assert decided >= 300
