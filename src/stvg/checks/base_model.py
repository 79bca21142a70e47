"""The base-model gate: the policy GRPO starts from is loadable, with the prompt it will be trained on.

The ``base_model`` stage either builds a model into its folder (``train.model: tiny``) or records a
reference to one (``source.json``: a local checkpoint or a hub id, weights not copied). A built folder
must hold what ``from_pretrained`` and the processor load (config.json, weights, tokenizer) plus
``prompt_template.json``, and its summary a positive parameter count (0 means an empty model was
saved), and, when the tiny model went through the format warm-up, a parse rate of its probe answers
of at least ``MIN_FORMAT_PARSE_RATE``. A local reference is checked the same way in the folder it points to; a hub id cannot be
checked offline, so only the record and the template are. Training would otherwise fail minutes in,
or worse, train with a fallback template the evaluation does not use.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stvg.checks.core import CheckReport, Expect, run_suite
from stvg.checks.files import model_folder_facts, number, read_json

SUMMARY = "summary.json"
SOURCE = "source.json"  # stvg.training.policy.SOURCE_FILE (not imported: that module loads torch)
KINDS = ("built", "local", "hub")
MIN_FORMAT_PARSE_RATE = 0.5  # a warmed-up tiny policy below this would leave GRPO without rewards


def base_model_table(out_dir: Path) -> pd.DataFrame:
    """One row for the stage's folder: what kind of base model it holds and the file facts."""
    out_dir = Path(out_dir)
    source = read_json(out_dir / SOURCE)
    if (out_dir / "config.json").is_file() or not source:
        kind, folder = "built", out_dir
    else:
        local = Path(str(source.get("model", "")))
        kind, folder = ("local", local) if source.get("local") else ("hub", None)
    facts = model_folder_facts(folder) if folder is not None else {}
    row = {
        "item": str(folder or source.get("model", out_dir)),
        "kind": kind,
        **facts,
        # the template the policy is trained with always lives in the stage's own folder
        "has_template": model_folder_facts(out_dir)["has_template"],
        "n_params": number(read_json(out_dir / SUMMARY).get("n_params")),
        "format_steps": number(read_json(out_dir / SUMMARY).get("format_steps")),
        "format_parse_rate": number(read_json(out_dir / SUMMARY).get("format_parse_rate")),
    }
    return pd.DataFrame([row])


def base_model_expectations(kind: str, warmed_up: bool = False) -> list[Expect]:
    """The suite for a ``built``, ``local`` or ``hub`` base model (``warmed_up``: a format warm-up ran)."""
    true = {"value_set": [True]}
    suite = [
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "has_template", **true},
            "prompt_template.json with a {query} slot (train and evaluate must ask the same question)",
        ),
    ]
    if kind == "hub":
        return suite
    suite += [
        Expect("ExpectColumnValuesToBeInSet", {"column": "has_config", **true}, "config.json is present"),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "has_weights", **true},
            "non-empty model weights (safetensors or pytorch_model.bin)",
        ),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "has_tokenizer", **true},
            "tokenizer_config.json and a vocabulary (tokenizer.json, vocab.json or tokenizer.model)",
        ),
    ]
    if kind == "built":
        suite += [
            Expect(
                "ExpectColumnValuesToNotBeNull", {"column": "n_params"}, "summary.json counts the parameters"
            ),
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "n_params", "min_value": 0, "strict_min": True},
                "the built model has parameters (n_params > 0)",
            ),
        ]
    if kind == "built" and warmed_up:
        suite.append(
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "format_parse_rate", "min_value": MIN_FORMAT_PARSE_RATE, "max_value": 1},
                f"the format warm-up taught the answer format (parse rate >= {MIN_FORMAT_PARSE_RATE}: "
                "raise train.tiny.format_steps)",
            )
        )
    return suite


def check_base_model(out_dir: Path) -> CheckReport:
    """Run the base-model suite on the stage's folder (``artifacts/base_model``)."""
    table = base_model_table(Path(out_dir))
    kind = str(table.at[0, "kind"])
    warmed_up = bool(table.at[0, "format_steps"] > 0)  # NaN (no warm-up recorded) compares False
    return run_suite("base_model", table, base_model_expectations(kind, warmed_up), id_column="item")
