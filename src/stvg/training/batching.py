"""GRPO batch semantics of a resolved TRL ``GRPOConfig``: prompts per optimizer step, loss normalisation.

TRL 1.16 counts *completions*: each process takes ``per_device_train_batch_size`` completions per
micro-step, an optimizer step accumulates ``gradient_accumulation_steps`` micro-steps, and one
``generate`` call per process produces ``per_device_train_batch_size x steps_per_generation`` of them
(whole groups of ``num_generations``). So one optimizer step sees

    per_device_train_batch_size x processes x gradient_accumulation_steps / num_generations  prompts.

The official STVG-R1 trainer (trl 0.15 lineage, 8 processes, batch 1 per device, n = 8) counts
prompts: 8 prompts x 8 completions per optimizer step, each process generating one prompt's group, and
its loss averages each completion's token losses, then the completions -- TRL's ``loss_type="grpo"``.
TRL 1.16 defaults to ``"dapo"`` (one token-level mean over the whole generation batch), which weighs
long completions more. ``params.paper.yaml`` (8 GPUs) and ``params.paper.1gpu.yaml`` (one GPU, by
gradient accumulation) both resolve to the official 8 prompts and per-sequence averaging; the train
stage records these figures in its summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# How each TRL 1.16 loss type turns per-token losses into the loss of one optimizer step.
LOSS_NORMALISATION = {
    "grpo": "per-sequence: mean over each completion's tokens, then over the step's completions",
    "sapo": "per-sequence: mean over each completion's tokens, then over the step's completions",
    "bnpo": "per-token: mean over the tokens of each micro-batch, then over micro-batches",
    "dr_grpo": "per-token sum divided by completions x max_completion_length",
    "dapo": "per-token: mean over all tokens of the generation batch",
    "cispo": "per-token: mean over all tokens of the generation batch",
    "vespo": "per-token: mean over all tokens of the generation batch",
    "luspo": "per-sequence sums (length-weighted), mean over completions",
}
OFFICIAL_PROMPTS_PER_STEP = 8
OFFICIAL_LOSS_TYPE = "grpo"


@dataclass(frozen=True)
class BatchSemantics:
    """What one optimizer step of a GRPO run consists of."""

    num_processes: int
    num_generations: int
    completions_per_micro_step: int  # across all processes
    micro_steps_per_optimizer_step: int  # gradient accumulation
    completions_per_step: int
    prompts_per_step: float  # completions_per_step / num_generations
    completions_per_generate_call: int  # per process
    loss_type: str
    loss_normalisation: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, e.g. for a stage summary."""
        return asdict(self)

    def departures_from_official(self) -> list[str]:
        """How this run's batching differs from the official trainer's ([] = the same)."""
        out = []
        if self.prompts_per_step != OFFICIAL_PROMPTS_PER_STEP:
            out.append(f"{self.prompts_per_step:g} prompts per optimizer step (official: 8)")
        if self.loss_type != OFFICIAL_LOSS_TYPE:
            out.append(f"loss_type {self.loss_type!r} (official: per-sequence averaging, 'grpo')")
        return out


def batch_semantics(args: Any, num_processes: int | None = None) -> BatchSemantics:
    """The batch semantics of GRPOConfig ``args`` on ``num_processes`` processes (default: the world size
    ``args`` was resolved with). ``steps_per_generation`` is kept as resolved (it defaults to the
    gradient accumulation steps, independent of the process count).

    >>> from types import SimpleNamespace as NS
    >>> paper = NS(world_size=1, per_device_train_batch_size=1, gradient_accumulation_steps=8,
    ...            num_generations=8, steps_per_generation=8, loss_type="grpo")
    >>> s = batch_semantics(paper, num_processes=8)
    >>> s.prompts_per_step, s.completions_per_step, s.departures_from_official()
    (8.0, 64, [])
    """
    procs = int(num_processes or getattr(args, "world_size", 1) or 1)
    per_device = int(args.per_device_train_batch_size)
    accumulation = int(args.gradient_accumulation_steps)
    n = int(args.num_generations)
    per_step = per_device * procs * accumulation
    loss_type = str(args.loss_type)
    return BatchSemantics(
        num_processes=procs,
        num_generations=n,
        completions_per_micro_step=per_device * procs,
        micro_steps_per_optimizer_step=accumulation,
        completions_per_step=per_step,
        prompts_per_step=per_step / n,
        completions_per_generate_call=per_device * int(args.steps_per_generation),
        loss_type=loss_type,
        loss_normalisation=LOSS_NORMALISATION.get(loss_type, f"unknown loss type {loss_type!r}"),
    )
