"""The prompt and answer format, in one place and versioned with the model it trains.

The wording paraphrases the official STVG-R1 ``QUESTION_TEMPLATE`` (REFERENCE 7.2): the red number at
the centre of every object is its ID; the event sentence is quoted, lower-cased, trailing period
stripped; two steps (when, then which ID); reasoning in ``<think>`` with a temporal and a spatial
analysis; the answer ``<answer>Target ID: N, Time range: s to e</answer>`` with two decimals. As in the
official code there is no system prompt and the user turn holds the text first, then the video.
Bump ``TEMPLATE_VERSION`` on any change: the text is saved next to the weights
(``prompt_template.json``) so a checkpoint is always evaluated with the prompt it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stvg.io import write_json_atomic

TEMPLATE_VERSION = "stvg-r1-v1"
TEMPLATE_FILE = "prompt_template.json"

QUESTION_TEMPLATE = (
    "Every object in this video carries a red number at its centre: that number is the object's ID. "
    'Find the object and the moment described by the sentence: "{query}".\n'
    "Work in two steps:\n"
    "1. Determine the precise time period in which the event happens.\n"
    "2. Identify which object ID the sentence refers to.\n"
    "Reason inside <think> </think>: give a temporal analysis with timestamps (xx.xx) or ranges "
    '(xx.xx to xx.xx), and a spatial analysis naming the object ID ("xx").\n'
    "Then give the answer inside <answer> </answer>, with the start and end times in seconds to two "
    "decimals, in exactly this format: Target ID: [ID], Time range: [start time to end time]. "
    "For example: <answer>Target ID: 1, Time range: 12.54 to 17.83</answer>"
)

ANSWER_FORMAT = "Target ID: {target_id}, Time range: {start_s:.2f} to {end_s:.2f}"


def normalize_query(query: str) -> str:
    """Lower-case and strip the trailing period, as the official training data does."""
    return query.strip().rstrip(".").strip().lower()


def question_text(query: str, template: str = QUESTION_TEMPLATE) -> str:
    """The user prompt for one referring sentence."""
    return template.format(query=normalize_query(query))


def build_messages(query: str, template: str = QUESTION_TEMPLATE) -> list[dict[str, Any]]:
    """Chat messages for one sample: one user turn, text first and then the video placeholder."""
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": question_text(query, template)}, {"type": "video"}],
        }
    ]


def format_answer(target_id: int, start_s: float, end_s: float, think: str = "") -> str:
    """A well-formed completion (used for tokenizer corpora and oracle baselines)."""
    answer = ANSWER_FORMAT.format(target_id=int(target_id), start_s=start_s, end_s=end_s)
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def save_template(model_dir: str | Path, template: str = QUESTION_TEMPLATE) -> None:
    """Write the prompt template and its version next to the model weights."""
    write_json_atomic(
        Path(model_dir) / TEMPLATE_FILE,
        {"version": TEMPLATE_VERSION, "question_template": template, "answer_format": ANSWER_FORMAT},
    )


def load_template(model_dir: str | Path) -> str:
    """The question template saved with a model; the current one when the folder has none (a hub model)."""
    path = Path(model_dir) / TEMPLATE_FILE
    if not path.is_file():
        return QUESTION_TEMPLATE
    data = json.loads(path.read_text(encoding="utf-8"))
    if "{query}" not in data.get("question_template", ""):
        raise ValueError(
            f"{path}: question_template lacks the {{query}} placeholder; re-save it with save_template"
        )
    return str(data["question_template"])
