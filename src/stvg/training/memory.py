"""The GPU memory GRPO training holds for its whole run, checked before the first step.

Policy weights, the reference model (``beta`` > 0), gradients and the optimizer's state all stay on one
GPU in plain (non-ZeRO) training, whatever the batch: their sum is known before anything is generated.
When it leaves too little for activations, the first optimizer step runs out of memory after the whole
first round of generation; the train stage refuses up front instead and names the way out. For
Qwen2.5-VL-7B in bfloat16, policy + reference + gradients are 46.3 GiB and AdamW's two states 30.9 GiB
more: 77.2 GiB of an 80 GB H100's 79.2 GiB, which the activations of a ~3k-token sequence cannot share
(Adafactor's factored state is a few MiB; an H200 holds either). ZeRO-3 shards and offloads this state,
so DeepSpeed and FSDP runs are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
# Trainer ``optim`` name -> (full-size states per trainable parameter, bytes per state element; 0 = the
# parameter's own dtype). Adafactor keeps row and column statistics only (negligible here);
# TrainingArguments' SGD has no momentum. Other names (paged, GaLore, ...) are not estimated.
OPTIMIZER_STATES: dict[str, tuple[int, int]] = {
    "adamw_torch": (2, 0),
    "adamw_torch_fused": (2, 0),
    "adamw_torch_8bit": (2, 1),
    "adamw_bnb_8bit": (2, 1),
    "adamw_8bit": (2, 1),
    "lion_8bit": (1, 1),
    "lion_32bit": (1, 4),
    "adagrad": (1, 0),
    "rmsprop": (1, 0),
    "sgd": (0, 0),
    "adafactor": (0, 0),
}


@dataclass(frozen=True)
class StaticMemory:
    """Bytes held on the training GPU for the whole run, by what holds them."""

    weights: int
    reference: int
    gradients: int
    optimizer: int
    optim: str

    @property
    def total(self) -> int:
        return self.weights + self.reference + self.gradients + self.optimizer

    def describe(self) -> str:
        parts = [("policy", self.weights), ("reference", self.reference), ("gradients", self.gradients)]
        parts.append((f"{self.optim} state", self.optimizer))
        text = " + ".join(f"{name} {size / GIB:.1f} GiB" for name, size in parts if size)
        return f"{text} = {self.total / GIB:.1f} GiB"


def static_memory(
    n_params: int, n_trainable: int, param_bytes: int, optim: str, with_reference: bool
) -> StaticMemory | None:
    """What policy, reference, gradients and ``optim``'s state hold; ``None`` for an unknown optimizer."""
    if optim not in OPTIMIZER_STATES:
        return None
    states, state_bytes = OPTIMIZER_STATES[optim]
    return StaticMemory(
        weights=n_params * param_bytes,
        reference=n_params * param_bytes if with_reference else 0,
        gradients=n_trainable * param_bytes,
        optimizer=n_trainable * states * (state_bytes or param_bytes),
        optim=optim,
    )


class GpuMemoryError(RuntimeError):
    """Training would run out of GPU memory at its first optimizer step."""


def check_fits(static: StaticMemory, device_bytes: int, max_fraction: float, device: str) -> None:
    """Refuse when the run's static state takes more than ``max_fraction`` of the device's memory."""
    if max_fraction <= 0 or static.total <= max_fraction * device_bytes:
        return
    raise GpuMemoryError(
        f"train: {static.describe()} would stay on {device} ({device_bytes / GIB:.1f} GiB) for the whole run, "
        f"more than train.max_static_gpu_fraction ({max_fraction:g}) of it, leaving too little for "
        "activations: the first optimizer step would run out of memory after the first round of "
        "generation. Use an optimizer with less state (train.grpo.optim: adafactor, as "
        'params.paper.first.yaml does), a larger GPU, or ZeRO-3 with offload (README "Training the 7B '
        'policy"); train.max_static_gpu_fraction: 0 skips this check.'
    )
