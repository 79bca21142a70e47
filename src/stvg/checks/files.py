"""File facts shared by the artifact gates (detector, base_model, train): what a folder must hold.

A gate over files turns each fact into a table column, so a missing or empty file shows up as a
failed expectation naming the folder, like any other bad value. Unreadable JSON reads as ``{}``:
the gate then reports the missing fields instead of crashing the flow on a parse error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Hugging Face save_pretrained layouts: one file, a sharded index, or the legacy PyTorch pickle.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# A fast tokenizer (tokenizer.json) or a slow one's vocabulary; tokenizer_config.json is always written.
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object at ``path``, or {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_bytes(path: Path) -> int:
    """Size of a regular file, 0 when it does not exist (so "exists and non-empty" is ``> 0``)."""
    return path.stat().st_size if path.is_file() else 0


def number(value: Any) -> float:
    """A JSON number as float; anything else (missing, text, bool) as NaN, which GX counts as null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def is_finite_number(value: Any) -> bool:
    """True for an int/float that is neither NaN nor infinite (bools are not numbers here)."""
    return math.isfinite(number(value))


def model_folder_facts(folder: Path) -> dict[str, bool]:
    """What ``from_pretrained`` + the project's template loader need: config, weights, tokenizer, template."""
    return {
        "has_config": bool(read_json(folder / "config.json")),
        "has_weights": any(file_bytes(folder / name) > 0 for name in WEIGHT_FILES),
        "has_tokenizer": (folder / "tokenizer_config.json").is_file()
        and any(file_bytes(folder / name) > 0 for name in TOKENIZER_VOCAB_FILES),
        # load_template rejects a template without the {query} slot: the policy would never see the query
        "has_template": "{query}"
        in str(read_json(folder / "prompt_template.json").get("question_template", "")),
    }
