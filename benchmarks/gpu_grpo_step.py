"""One GRPO step of the full Qwen2.5-VL-7B architecture (random weights) on one GPU; prints JSON lines.

    python benchmarks/gpu_grpo_step.py                  # 7B, n=8, ~2k visual tokens, 256-token completions (GPU)
    python benchmarks/gpu_grpo_step.py --tiny           # CPU dry run of the same code path on the tiny config

The 7B config values are written here (Qwen2.5-VL-7B-Instruct's config.json), so nothing is downloaded;
the tokenizer is the offline one (``stvg.training.tokenizer``) and the config's special-token ids are set
to its ids, which leaves the compute identical. The step runs through ``VideoGRPOTrainer`` exactly as
``stvg train`` does: one prompt, ``n`` sampled completions forced to full length (``min_new_tokens``),
the reference-model pass (beta 0.04) and the loss pass with the video. The optimizer defaults to Adafactor
because AdamW state for 8 B parameters does not fit beside policy + reference on one 80 GB GPU (the paper
uses ZeRO-3 offload on 8 GPUs). Output: one JSON object per measured step (step time, generation tokens/s,
peak memory, device) and a final summary.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU dry run with the tiny config")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--frames", type=int, default=40, help="sampled frames (20 s at 2 fps)")
    parser.add_argument("--height", type=int, default=252)
    parser.add_argument("--width", type=int, default=336, help="252x336, 40 frames -> 2160 visual tokens")
    parser.add_argument("--steps", type=int, default=2, help="measured steps (the first includes warm-up)")
    parser.add_argument("--optim", default="adafactor")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    import torch
    from trl import GRPOConfig

    from stvg.config import TinyModelParams
    from stvg.training.grpo import build_trainer, video_dataset
    from stvg.training.policy import build_tiny_policy, load_policy, save_policy
    from stvg.training.rewards import build_reward_funcs

    cuda = torch.cuda.is_available()
    if not args.tiny and not cuda:
        raise SystemExit("gpu_grpo_step: no CUDA device; run with --tiny for the CPU dry run")
    device = "cuda" if cuda and not args.tiny else "cpu"
    if args.tiny:
        args.completion_tokens = min(args.completion_tokens, 16)
        args.frames, args.height, args.width = 8, 56, 84
        args.num_generations = min(args.num_generations, 4)
    tiny_model, processor = build_tiny_policy(TinyModelParams())
    model = tiny_model if args.tiny else build_7b(processor, device)
    # TRL builds the reference model (beta > 0) from the policy's path, so the random weights are saved
    # first (~16 GB for 7B) and the policy is loaded back from there, as `stvg train` does.
    weights_dir = tempfile.TemporaryDirectory()
    save_policy(model, processor, weights_dir.name)
    del model, tiny_model
    model, processor = load_policy(
        weights_dir.name, device=device, dtype="float32" if args.tiny else "bfloat16"
    )

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
    dataset = video_dataset(rows, lambda _vid: (frames, sampling))
    funcs, weights = build_reward_funcs({"format": 1.0, "tiou": 1.0, "object": 1.0})
    gen_times: list[float] = []
    original_generate = model.generate

    def timed_generate(*a: Any, **kw: Any) -> Any:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = original_generate(*a, **kw)
        if cuda:
            torch.cuda.synchronize()
        gen_times.append(time.perf_counter() - t0)
        return out

    model.generate = timed_generate
    with tempfile.TemporaryDirectory() as tmp:
        config = GRPOConfig(
            output_dir=tmp,
            num_generations=args.num_generations,
            per_device_train_batch_size=args.num_generations,
            max_completion_length=args.completion_tokens,
            generation_kwargs={"min_new_tokens": args.completion_tokens},
            learning_rate=1e-6,
            beta=0.04,
            temperature=1.0,
            max_steps=args.steps,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            bf16=not args.tiny,
            use_cpu=args.tiny,
            optim=args.optim,
            gradient_checkpointing=args.gradient_checkpointing and not args.tiny,
            reward_weights=weights,
            seed=0,
        )
        trainer = build_trainer(
            model=model, reward_funcs=funcs, args=config, train_dataset=dataset, processing_class=processor
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
    steps = [h for h in trainer.state.log_history if "step_time" in h]
    enc_tokens = int(np.prod([n_frames // 2, args.height // 28, args.width // 28]))
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    for i, h in enumerate(steps):
        new_tokens = args.num_generations * args.completion_tokens
        record = {
            "bench": "gpu_grpo_step",
            "model": "tiny" if args.tiny else "Qwen2.5-VL-7B (random weights)",
            "device": device_name,
            "step": i + 1,
            "step_time_s": round(h["step_time"], 3),
            "generate_s": round(gen_times[i], 3) if i < len(gen_times) else None,
            "generation_tokens_per_s": round(new_tokens / gen_times[i], 1) if i < len(gen_times) else None,
            "num_generations": args.num_generations,
            "completion_tokens": args.completion_tokens,
            "visual_tokens": enc_tokens,
            "mean_completion_length": h.get("completions/mean_length"),
        }
        print(json.dumps(record))
    summary = {
        "bench": "gpu_grpo_step/summary",
        "device": device_name,
        "total_s": round(total, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "optim": args.optim,
        "gradient_checkpointing": bool(config.gradient_checkpointing),
    }
    print(json.dumps(summary))
    weights_dir.cleanup()


if __name__ == "__main__":
    main()
