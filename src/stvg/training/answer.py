"""Parse the policy's answer: pure, total (never raises), and explicit about why a text fails.

Two dialects, one shared by training (rewards) and evaluation (``train.answer_parser``,
``evaluate.answer_parser``):

- ``official`` (default) — exactly the official STVG-R1 parser (``grpo_video.py`` and
  ``evaluate.py``): the LAST ``<answer>…</answer>`` block (case-sensitive tags), then
  ``Target ID:\\s*(\\d+)`` and ``Time range:\\s*(\\d+\\.?\\d*)\\s*(?:to|and)\\s*(\\d+\\.?\\d*)``, both
  case-insensitive inside the block. A number stops where the pattern stops, so a sentence-final
  period (``11.00.``, ``Target ID: 2.``, ``5.``) parses and ``Target ID: 2.5`` reads as 2. The
  answer is usable when both the ID and the range are found; a reversed range is still an answer
  (the metrics score it 0, as the official formulas do).
- ``lenient`` — our wider spelling and stricter meaning: case-insensitive tags, ``[…]`` brackets,
  an ``s`` unit, ``-``/``–`` for "to", ``=`` or no colon, a ``+`` sign; but a non-integer ID, an ID
  above ``MAX_TARGET_ID``, negative, reversed or absurdly large times (``MAX_TIME_S``) and exponents
  are failures with a reason. A sentence-final period parses here too.

The format check follows the same dialect: the official one is a case-sensitive full match of
``<think>…</think>\\s*<answer>…</answer>`` on the stripped completion.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["official", "lenient"]
DIALECTS: tuple[str, ...] = ("official", "lenient")
DEFAULT_DIALECT: Dialect = "official"
MAX_TIME_S = 86_400.0  # lenient: one day; anything longer is a runaway number, not a time
MAX_TARGET_ID = 10_000  # lenient

# official STVG-R1 patterns (grpo_video.py / evaluate.py)
_OFFICIAL_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OFFICIAL_ID = re.compile(r"Target ID:\s*(\d+)", re.IGNORECASE)
_OFFICIAL_TIME = re.compile(r"Time range:\s*(\d+\.?\d*)\s*(?:to|and)\s*(\d+\.?\d*)", re.IGNORECASE)
_OFFICIAL_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)

# lenient patterns: a number may end in a sentence-final period, never in a digit, ".digit" or exponent
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.IGNORECASE | re.DOTALL)
_NUM = r"[-+]?\d+(?:\.\d*)?(?!\d|\.\d|[eE][-+]?\d)"
_ID_RE = re.compile(r"target\s*id\s*[:=]?\s*\[?\s*([-+]?\d+(?:\.\d+)?)(?!\d|\.\d)", re.IGNORECASE)
_TIME_RE = re.compile(
    rf"time\s*range\s*[:=]?\s*\[?\s*({_NUM})\s*s?\s*(?:to|and|-|–)\s*({_NUM})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedAnswer:
    """The parsed answer; ``ok`` False means unusable, with ``reason`` saying why.

    ``target_id`` is kept when the ID was read but the rest failed (``train.reward_id_needs_time:
    false`` pays the ID reward on it).
    """

    target_id: int | None
    start_s: float
    end_s: float
    ok: bool
    reason: str = ""


def has_valid_format(text: str, dialect: Dialect = DEFAULT_DIALECT) -> bool:
    """Whether the whole stripped text is ``<think>…</think>`` + whitespace + ``<answer>…</answer>``.

    >>> has_valid_format("<think>a</think> <answer>Target ID: 1, Time range: 1.00 to 2.00</answer>")
    True
    >>> has_valid_format("Sure! <think>a</think><answer>x</answer>")
    False
    >>> has_valid_format("<THINK>a</THINK><ANSWER>x</ANSWER>"), has_valid_format("<THINK>a</THINK><ANSWER>x</ANSWER>", "lenient")
    (False, True)
    """
    if not isinstance(text, str):
        return False
    pattern = _OFFICIAL_FORMAT if dialect == "official" else _FORMAT_RE
    return pattern.fullmatch(text.strip()) is not None


def _fail(reason: str, target_id: int | None = None) -> ParsedAnswer:
    return ParsedAnswer(target_id=target_id, start_s=math.nan, end_s=math.nan, ok=False, reason=reason)


def parse_answer(text: str, dialect: Dialect = DEFAULT_DIALECT) -> ParsedAnswer:
    """Parse the last ``<answer>`` block of a completion in the given dialect.

    >>> parse_answer("<think>..</think><answer>Target ID: 2, Time range: 1.50 to 4.00.</answer>")
    ParsedAnswer(target_id=2, start_s=1.5, end_s=4.0, ok=True, reason='')
    >>> parse_answer("no tags here").reason
    'no <answer> block'
    >>> parse_answer("<answer>Target ID: 2</answer>").reason
    "no 'Time range: s to e' in the answer"
    """
    if not isinstance(text, str):
        return _fail(f"not text ({type(text).__name__})")
    if dialect == "official":
        return _parse_official(text)
    if dialect == "lenient":
        return _parse_lenient(text)
    raise ValueError(f"unknown answer dialect {dialect!r}; use one of {', '.join(DIALECTS)}")


def answer_parser(dialect: Dialect = DEFAULT_DIALECT) -> Callable[[str], ParsedAnswer]:
    """``parse_answer`` bound to a dialect (a one-argument parser for evaluation and rewards)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown answer dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    return functools.partial(parse_answer, dialect=dialect)


def _parse_official(text: str) -> ParsedAnswer:
    blocks = _OFFICIAL_ANSWER.findall(text)
    if not blocks:
        return _fail("no <answer> block")
    body = blocks[-1]
    id_match = _OFFICIAL_ID.search(body)
    target_id = int(id_match.group(1)) if id_match else None
    time_match = _OFFICIAL_TIME.search(body)
    if target_id is None:
        return _fail("no 'Target ID: N' in the answer")
    if time_match is None:
        return _fail("no 'Time range: s to e' in the answer", target_id)
    start_s, end_s = float(time_match.group(1)), float(time_match.group(2))
    return ParsedAnswer(target_id=target_id, start_s=start_s, end_s=end_s, ok=True)


def _parse_lenient(text: str) -> ParsedAnswer:
    blocks = _ANSWER_RE.findall(text)
    if not blocks:
        return _fail("no <answer> block")
    body = blocks[-1]
    id_match = _ID_RE.search(body)
    if id_match is None:
        return _fail("no 'Target ID: N' in the answer")
    raw_id = id_match.group(1)
    if not re.fullmatch(r"[-+]?\d+", raw_id):
        return _fail(f"target ID {raw_id!r} is not an integer")
    target_id = int(raw_id)
    if not 0 <= target_id <= MAX_TARGET_ID:
        return _fail(f"target ID {target_id} out of range [0, {MAX_TARGET_ID}]")
    time_match = _TIME_RE.search(body)
    if time_match is None:
        return _fail("no 'Time range: s to e' in the answer", target_id)
    start_s, end_s = float(time_match.group(1)), float(time_match.group(2))
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        return _fail("non-finite time", target_id)
    if start_s < 0 or end_s < 0:
        return _fail(f"negative time ({start_s} to {end_s})", target_id)
    if start_s > MAX_TIME_S or end_s > MAX_TIME_S:
        return _fail(f"time beyond {MAX_TIME_S:.0f} s ({start_s} to {end_s})", target_id)
    if end_s < start_s:
        return _fail(f"reversed time range ({start_s} to {end_s})", target_id)
    return ParsedAnswer(target_id=target_id, start_s=start_s, end_s=end_s, ok=True)
