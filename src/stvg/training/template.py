"""The prompt and answer format, in one place and versioned with the model it trains.

Two question templates:

- ``OFFICIAL_QUESTION_TEMPLATE``: the official STVG-R1 ``QUESTION_TEMPLATE`` / ``GROUND_TEMPLATE``
  text verbatim (its ``[EVENT]`` slot written as ``{query}``). It is what the released checkpoint
  was trained on, so it is the template of any model folder that ships none (a hub checkpoint).
- ``QUESTION_TEMPLATE``: our paraphrase with the same content (REFERENCE 7.2): the red number at
  the centre of every object is its ID; two steps (when, then which ID); reasoning in ``<think>``
  with a temporal and a spatial analysis; the answer ``<answer>Target ID: N, Time range: s to
  e</answer>`` with two decimals. The embedded default's tiny policy is built and trained with it.

As in the official code there is no system prompt and the user turn holds the text first, then the
video. Query normalisation follows the official code: training lower-cases the sentence and drops
one trailing period (``grpo_video.py``); evaluation passes the sentence unchanged (``evaluate.py``);
``evaluate.normalize_query: true`` normalises there too.
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

# The official text verbatim (``src/open_r1/trainer/grpo_trainer_video.py``), ``[EVENT]`` -> ``{query}``.
OFFICIAL_QUESTION_TEMPLATE = (
    "Each object in the video is marked with a red number at its center, representing its object ID. "
    'To accurately pinpoint the event "{query}" in the video:\n\n'
    "1.Determine the precise time period of the event occurs.\n\n"
    "2.Identify which object ID is corresponding to the described event.\n\n"
    "Output your thought process within the <think> </think> tags, including both a temporal analysis "
    '(e.g., specific timestamps "xx.xx" or time ranges "xx.xx to xx.xx") and a spatial analysis '
    '(e.g., object ID "xx").\n\n'
    "Then, provide the start and end times (in seconds, precise to two decimal places), and object ID "
    'in the format "Target ID: [ID], Time range: [start time to end time]" within the <answer> </answer> '
    'tags. For example: "Target ID: 1, Time range: 12.54 to 17.83".'
)
TEMPLATES = {"official": OFFICIAL_QUESTION_TEMPLATE, "paraphrase": QUESTION_TEMPLATE}

ANSWER_FORMAT = "Target ID: {target_id}, Time range: {start_s:.2f} to {end_s:.2f}"


def normalize_query(query: str) -> str:
    """The official training normalisation: strip, lower-case, then drop one trailing period.

    >>> normalize_query("  The Man in Grey waves.  "), normalize_query("He waves ..")
    ('the man in grey waves', 'he waves .')
    """
    text = query.strip().lower()
    return text.removesuffix(".")


def question_text(query: str, template: str = QUESTION_TEMPLATE, normalize: bool = True) -> str:
    """The user prompt for one referring sentence (normalised as in training unless ``normalize`` is off)."""
    return template.format(query=normalize_query(query) if normalize else query)


def build_messages(
    query: str, template: str = QUESTION_TEMPLATE, normalize: bool = True
) -> list[dict[str, Any]]:
    """Chat messages for one sample: one user turn, text first and then the video placeholder."""
    text = question_text(query, template, normalize)
    return [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "video"}]}]


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
    """The question template saved with a model; the official text when there is none (a hub id, or a
    checkpoint folder without ``prompt_template.json``, such as the released STVG-R1 model)."""
    path = Path(str(model_dir)) / TEMPLATE_FILE
    if not path.is_file():
        return OFFICIAL_QUESTION_TEMPLATE
    data = json.loads(path.read_text(encoding="utf-8"))
    if "{query}" not in data.get("question_template", ""):
        raise ValueError(
            f"{path}: question_template lacks the {{query}} placeholder; re-save it with save_template"
        )
    return str(data["question_template"])
