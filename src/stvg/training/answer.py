"""Parse the policy's answer: pure, total (never raises), and explicit about why a text fails.

Follows the official reward parser (REFERENCE 7.2): the LAST ``<answer>`` block, ``Target ID: N`` and
``Time range: a to b``. It is more tolerant than the official regexes in spelling (case, whitespace,
"and" for "to", an optional "s" unit, brackets) and stricter in meaning: a non-integer ID, negative,
reversed, non-finite or absurdly large times are failures with a reason, not silent zeros.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_TIME_S = 86_400.0  # one day: anything longer is a runaway number, not a time
MAX_TARGET_ID = 10_000

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.IGNORECASE | re.DOTALL)
_NUM = r"[-+]?\d+(?:\.\d+)?(?![\d.]|[eE][-+]?\d)"  # no exponent: "2e1" is not a time
_ID_RE = re.compile(r"target\s*id\s*[:=]?\s*\[?\s*([-+]?[\d.]+)\s*\]?", re.IGNORECASE)
_TIME_RE = re.compile(
    rf"time\s*range\s*[:=]?\s*\[?\s*({_NUM})\s*s?\s*(?:to|and|-|–)\s*({_NUM})\s*s?\s*\]?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedAnswer:
    """The parsed answer; ``ok`` False means unusable, with ``reason`` saying why."""

    target_id: int | None
    start_s: float
    end_s: float
    ok: bool
    reason: str = ""


def has_valid_format(text: str) -> bool:
    """Whether the whole stripped text is ``<think>…</think>`` + whitespace + ``<answer>…</answer>``.

    >>> has_valid_format("<think>a</think> <answer>Target ID: 1, Time range: 1.00 to 2.00</answer>")
    True
    >>> has_valid_format("Sure! <think>a</think><answer>x</answer>")
    False
    """
    return _FORMAT_RE.fullmatch(text.strip()) is not None


def _fail(reason: str, target_id: int | None = None) -> ParsedAnswer:
    return ParsedAnswer(target_id=target_id, start_s=math.nan, end_s=math.nan, ok=False, reason=reason)


def parse_answer(text: str) -> ParsedAnswer:
    """Parse the last ``<answer>`` block of a completion.

    >>> parse_answer("<think>..</think><answer>Target ID: 2, Time range: 1.50 to 4.00</answer>")
    ParsedAnswer(target_id=2, start_s=1.5, end_s=4.0, ok=True, reason='')
    >>> parse_answer("no tags here").reason
    'no <answer> block'
    """
    if not isinstance(text, str):
        return _fail(f"not text ({type(text).__name__})")
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
