"""One GRPO step of the full Qwen2.5-VL-7B architecture (random weights) on one GPU; prints JSON lines.

    python benchmarks/gpu_grpo_step.py                  # 7B, n=8, ~2k visual tokens, 256-token completions (GPU)
    python benchmarks/gpu_grpo_step.py --tiny           # CPU dry run of the same code path on the tiny config

The 7B config values are written here (Qwen2.5-VL-7B-Instruct's config.json), so nothing is downloaded;
the tokenizer is the offline one (``stvg.training.tokenizer``) and the config's special-token ids are set
to its ids, which leaves the compute identical. The policy is built in bfloat16 directly on the GPU and
the reference model (beta 0.04) is a copy of it attached to the trainer, so no 16 GB of weights go
through the disk. The step runs through ``VideoGRPOTrainer`` exactly as ``stvg train`` does: one prompt,
``n`` sampled completions forced to full length (``min_new_tokens``), the reference-model pass and the
loss pass with the video, per-sequence loss (``loss_type="grpo"``, the official averaging). The
optimizer defaults to Adafactor because AdamW state for 8 B parameters does not fit beside policy +
reference on one 80 GB GPU (the paper uses ZeRO-3 with offload on 8 GPUs).

Timing: ``step_s`` is one whole optimizer step (generation, reward, reference and loss passes, backward
and the optimizer update), CUDA-synchronised at both ends by a trainer callback; ``generate_s`` the
synchronised ``generate`` call inside it. The first step includes warm-up; report the last.
Output: one JSON object per step, then a summary with peak GPU memory (allocated and reserved).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np

QWEN25_VL_7B_TEXT = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
}
QWEN25_VL_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "tokens_per_second": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}


def build_7b(processor: Any, device: str) -> Any:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from stvg.training.tokenizer import special_token_ids

    ids = special_token_ids(processor.tokenizer)
    config = Qwen2_5_VLConfig(
        text_config={
            **QWEN25_VL_7B_TEXT,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config=QWEN25_VL_7B_VISION,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = [ids["<|im_end|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model


def step_timer(cuda: bool) -> Any:
    """A trainer callback recording the CUDA-synchronised wall time of each whole optimizer step."""
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self._t0 = 0.0

        def _now(self) -> float:
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self._t0 = self._now()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:  # after optimizer.step and zero_grad
            self.steps.append(self._now() - self._t0)

    return StepTimer()


def attach_reference(trainer: Any, beta: float) -> None:
    """Give a trainer built with beta 0 (no reference model) a frozen copy of its policy as reference.

    TRL builds the reference from the policy's folder (``from_pretrained``); the random 7B policy has no
    folder, and writing 16 GB to make one would dominate the run. A copy made before any update is the
    same model TRL would load.
    """
    import copy

    ref = copy.deepcopy(trainer.model).eval().requires_grad_(False)
    trainer.ref_model = trainer.accelerator.prepare_model(ref, evaluation_mode=True)
    trainer.beta = beta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The step's shape; ``--tiny`` shrinks it to a CPU dry run of the same code path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU dry run with the tiny config")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--frames", type=int, default=40, help="sampled frames (20 s at 2 fps)")
    parser.add_argument("--height", type=int, default=252)
    parser.add_argument("--width", type=int, default=336, help="252x336, 40 frames -> 2160 visual tokens")
    parser.add_argument("--steps", type=int, default=2, help="measured steps (the first includes warm-up)")
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--optim", default="adafactor")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.tiny:
        args.completion_tokens = min(args.completion_tokens, 16)
        args.frames, args.height, args.width = 8, 56, 84
        args.num_generations = min(args.num_generations, 4)
    return args


def synthetic_dataset(args: argparse.Namespace) -> Any:
    """One random-noise video (``args.frames`` sampled at 2 fps out of 25) asked ``args.steps`` times."""
    from stvg.training.grpo import video_dataset

    n_frames = args.frames
    sampling = {
        "native_fps": 25.0,
        "n_frames": n_frames * 12,
        "frame_indices": list(range(0, n_frames * 12, 12)),
    }
    frames = np.random.default_rng(0).integers(0, 255, (n_frames, args.height, args.width, 3), dtype=np.uint8)
    rows = [
        {
            "sample_id": f"s{i}",
            "video_id": "v",
            "query": "the person in red walks to the door",
            "start_s": 2.0,
            "end_s": 9.0,
            "target_id": 1,
        }
        for i in range(args.steps)
    ]
    return video_dataset(rows, lambda _vid: (frames, sampling))


def time_generate(model: Any, cuda: bool) -> list[float]:
    """Wrap ``model.generate`` so that each call's synchronised wall time is appended to the returned list."""
    import torch

    times: list[float] = []
    original_generate = model.generate

    def timed_generate(*a: Any, **kw: Any) -> Any:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = original_generate(*a, **kw)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        return out

    model.generate = timed_generate
    return times


def grpo_config(args: argparse.Namespace, output_dir: str, weights: list[float], cuda: bool) -> Any:
    """The official batching (one prompt, ``n`` completions forced to full length, per-sequence loss)."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=output_dir,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.num_generations,
        max_completion_length=args.completion_tokens,
        generation_kwargs={"min_new_tokens": args.completion_tokens},
        learning_rate=1e-6,
        beta=0.0,  # the reference is attached below (attach_reference)
        loss_type="grpo",
        temperature=1.0,
        max_steps=args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=not args.tiny,
        use_cpu=not cuda,
        optim=args.optim,
        gradient_checkpointing=args.gradient_checkpointing and not args.tiny,
        reward_weights=weights,
        seed=0,
    )


def step_records(
    args: argparse.Namespace, device_name: str, steps_s: list[float], gen_times: list[float], logs: list[dict]
) -> list[dict[str, Any]]:
    """One JSON record per measured optimizer step."""
    visual_tokens = int(np.prod([args.frames // 2, args.height // 28, args.width // 28]))
    new_tokens = args.num_generations * args.completion_tokens
    records = []
    for i, step_s in enumerate(steps_s):
        h = logs[i] if i < len(logs) else {}
        gen_s = gen_times[i] if i < len(gen_times) else None
        records.append(
            {
                "bench": "gpu_grpo_step",
                "model": "tiny" if args.tiny else "Qwen2.5-VL-7B (random weights)",
                "device": device_name,
                "step": i + 1,
                "step_s": round(step_s, 3),
                "generate_s": round(gen_s, 3) if gen_s is not None else None,
                "generation_tokens_per_s": round(new_tokens / gen_s, 1) if gen_s is not None else None,
                "num_generations": args.num_generations,
                "completion_tokens": args.completion_tokens,
                "visual_tokens": visual_tokens,
                "mean_completion_length": h.get("completions/mean_length"),
                "kl": h.get("kl"),
            }
        )
    return records


def main() -> None:
    args = parse_args()

    from stvg.env import configure_environment

    configure_environment()  # before torch, trl and the hub client read their environment at import
    import torch

    from stvg.config import TinyModelParams
    from stvg.training.grpo import build_trainer
    from stvg.training.policy import build_tiny_policy, disable_kv_cache
    from stvg.training.rewards import build_reward_funcs

    cuda = torch.cuda.is_available() and not args.tiny
    if not args.tiny and not cuda:
        raise SystemExit("gpu_grpo_step: no CUDA device; run with --tiny for the CPU dry run")
    tiny_model, processor = build_tiny_policy(TinyModelParams())
    model = tiny_model if args.tiny else build_7b(processor, "cuda")
    if args.gradient_checkpointing:
        disable_kv_cache(model)
    dataset = synthetic_dataset(args)
    funcs, weights = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 1.0})
    gen_times = time_generate(model, cuda)
    timer = step_timer(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        config = grpo_config(args, tmp, weights, cuda)
        trainer = build_trainer(
            model=model,
            reward_funcs=funcs,
            args=config,
            train_dataset=dataset,
            processing_class=processor,
            callbacks=[timer],
        )
        if args.beta:
            attach_reference(trainer, args.beta)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    device_name = torch.cuda.get_device_name(0) if cuda else "cpu"
    for record in step_records(args, device_name, timer.steps, gen_times, logs):
        print(json.dumps(record), flush=True)
    summary = {
        "bench": "gpu_grpo_step/summary",
        "device": device_name,
        "total_s": round(total, 2),
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
        "optim": args.optim,
        "beta": args.beta,
        "loss_type": "grpo",
        "gradient_checkpointing": bool(config.gradient_checkpointing),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
