"""GRPO rewards as plain TRL reward callables: ``(completions, **columns) -> list[float]``.

Ground truth comes from the dataset columns TRL forwards as keyword lists: ``start_s``, ``end_s`` (seconds)
and ``target_id``. ``tiou_reward`` scores with ``stvg.geometry.temporal_iou``, the same function the
benchmark metrics use, so the training signal cannot drift from the evaluation.

The official code sums tIoU and the ID match in one ``iou`` reward; here they are separate callables so
TRL logs each mean/std, and their weights live in ``train.reward_weights`` (equal weights reproduce the
official total, maximum 3). Answers are read with ``training.answer`` in the ``train.answer_parser``
dialect (official by default). As in the official reward, the ID counts only when the answer also
carries a time range (``id_needs_time``, ``train.reward_id_needs_time: true``): the official parser
fails the whole answer without one, so both task rewards are 0. ``false`` pays the ID reward on any
readable ID, a denser signal for a policy that has not learnt the range format yet, at the price of
rewarding answers the official evaluation scores 0.
``build_reward_funcs(..., gate_on_format=True)`` zeroes the task rewards of malformed completions:
with an additive format reward, group normalisation can pay a whole group for formatting alone when
the task rewards barely vary, which invites format-only gaming.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from stvg.geometry import temporal_iou
from stvg.training.answer import DEFAULT_DIALECT, Dialect, ParsedAnswer, has_valid_format, parse_answer

RewardFunc = Callable[..., list[float]]
REWARD_NAMES = ("format", "tiou", "object")


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a plain string or a conversational ``[{"role", "content"}]`` list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    return str(completion)


def _log_reasons(parsed: Sequence[ParsedAnswer], kwargs: dict[str, Any]) -> None:
    log_extra = kwargs.get("log_extra")
    if callable(log_extra):
        log_extra("parse_reason", [p.reason or "ok" for p in parsed])
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and parsed:
        log_metric("parse_rate", sum(p.ok for p in parsed) / len(parsed))


def format_reward(
    completions: Sequence[Any], dialect: Dialect = DEFAULT_DIALECT, **kwargs: Any
) -> list[float]:
    """1.0 when the whole completion is ``<think>…</think>`` then ``<answer>…</answer>``, else 0.0.

    >>> format_reward(["<think>a</think><answer>Target ID: 1, Time range: 0.00 to 1.00</answer>", "hi"])
    [1.0, 0.0]
    """
    return [1.0 if has_valid_format(completion_text(c), dialect) else 0.0 for c in completions]


def tiou_reward(
    completions: Sequence[Any],
    start_s: Sequence[float],
    end_s: Sequence[float],
    dialect: Dialect = DEFAULT_DIALECT,
    **kwargs: Any,
) -> list[float]:
    """Temporal IoU (seconds) of the answered range with the ground truth; 0.0 when unparsable.

    >>> tiou_reward(["<answer>Target ID: 1, Time range: 5.00 to 15.00.</answer>", "none"], [10.0, 1.0], [20.0, 2.0])
    [0.3333333333333333, 0.0]
    """
    parsed = [parse_answer(completion_text(c), dialect) for c in completions]
    _log_reasons(parsed, kwargs)
    rewards = []
    for p, gs, ge in zip(parsed, start_s, end_s, strict=True):
        rewards.append(float(temporal_iou(p.start_s, p.end_s, gs, ge)) if p.ok else 0.0)
    return rewards


def object_reward(
    completions: Sequence[Any],
    target_id: Sequence[int],
    dialect: Dialect = DEFAULT_DIALECT,
    id_needs_time: bool = True,
    **kwargs: Any,
) -> list[float]:
    """1.0 when the answered object ID equals the ground-truth ID, else 0.0 (an ID not in the video scores 0).

    With ``id_needs_time`` (the official rule) an answer without a usable time range earns nothing.

    >>> texts = ["<answer>Target ID: 3, Time range: 1 to 2</answer>", "<answer>Target ID: 3</answer>"]
    >>> object_reward(texts, [3, 3]), object_reward(texts, [3, 3], id_needs_time=False)
    ([1.0, 0.0], [1.0, 1.0])
    """
    rewards = []
    for c, gt in zip(completions, target_id, strict=True):
        p = parse_answer(completion_text(c), dialect)
        usable = p.ok or not id_needs_time
        rewards.append(1.0 if usable and p.target_id is not None and p.target_id == int(gt) else 0.0)
    return rewards


REWARDS: dict[str, RewardFunc] = {"format": format_reward, "tiou": tiou_reward, "object": object_reward}


def _bound(func: RewardFunc, name: str, gate: bool, dialect: Dialect, **options: Any) -> RewardFunc:
    """``func`` with the dialect (and options) fixed, optionally zeroed for malformed completions."""

    def reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        raw = func(completions, dialect=dialect, **options, **kwargs)
        if not gate:
            return raw
        return [
            r if has_valid_format(completion_text(c), dialect) else 0.0
            for r, c in zip(raw, completions, strict=True)
        ]

    reward.__name__ = name
    reward.__doc__ = f"{name} ({dialect} answers{', gated on the format' if gate else ''})."
    return reward


def build_reward_funcs(
    weights: dict[str, float],
    gate_on_format: bool = False,
    *,
    dialect: Dialect = DEFAULT_DIALECT,
    id_needs_time: bool = True,
) -> tuple[list[RewardFunc], list[float]]:
    """The reward callables and their weights, in ``REWARD_NAMES`` order, for TRL's GRPOTrainer.

    Rewards with weight 0 are still computed (so they are logged) but do not move the policy.

    >>> funcs, w = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 0.5}, gate_on_format=True)
    >>> [f.__name__ for f in funcs], w
    (['format_reward', 'tiou_reward', 'object_reward'], [1.0, 1.0, 0.5])
    >>> funcs[1](["<answer>Target ID: 1, Time range: 0 to 1</answer>"], start_s=[0.0], end_s=[1.0])
    [0.0]
    """
    unknown = set(weights) - set(REWARD_NAMES)
    if unknown:
        raise ValueError(f"unknown rewards {sorted(unknown)}; use {', '.join(REWARD_NAMES)}")
    funcs: list[RewardFunc] = []
    out_weights: list[float] = []
    for name in REWARD_NAMES:
        func = REWARDS[name]
        options = {"id_needs_time": id_needs_time} if name == "object" else {}
        funcs.append(_bound(func, func.__name__, gate_on_format and name != "format", dialect, **options))
        weight = float(weights.get(name, 0.0))
        if not math.isfinite(weight):
            raise ValueError(f"reward weight for {name!r} must be finite, got {weight}")
        out_weights.append(weight)
    return funcs, out_weights
