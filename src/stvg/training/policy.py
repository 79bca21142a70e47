"""The policy: Qwen2.5-VL plus its processor, built tiny and offline or loaded from a checkpoint.

``build_tiny_policy`` makes the embedded default: a Qwen2.5-VL with random (seeded) weights from
``train.tiny`` and a tokenizer trained offline (``tokenizer.py``); ``save_policy`` writes it with
``save_pretrained`` so ``load_policy`` reads it exactly like a real checkpoint. ``load_policy`` also
takes a Hugging Face id (``Qwen/Qwen2.5-VL-7B-Instruct``), but with ``HF_HUB_OFFLINE=1`` (the project
default, ``stvg.env``) only a local folder or an already-cached id works; set ``HF_HUB_OFFLINE=0`` to
download.

Video goes in as a VIDEO, never as a list of images: the prompt stage already sampled the frames
(``MaskDB.sampling``), so the processor must not resample (``do_sample_frames=False``) and must be told
the real timing with ``VideoMetadata(total_num_frames, fps, frames_indices)``; with only ``fps`` it assumes
24 fps and ``second_per_grid_ts`` (the absolute-time MRoPE positions) comes out wrong. The processor
only snaps the frames to multiples of 28 pixels: the prompt stage owns the pixel budget.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stvg.config import TinyModelParams
from stvg.training import template

log = logging.getLogger(__name__)

PATCH = 28  # Qwen2.5-VL: 14-px patches merged 2x2


def tokenizer_corpus(seed: int = 0, n_queries: int = 400) -> list[str]:
    """Local text the tiny tokenizer is trained on: the template, answers, numbers and synthetic queries."""
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue", "yellow", "white", "black", "grey", "orange", "purple"]
    things = ["square", "circle", "triangle", "man", "woman", "person", "child", "dog", "car", "ball"]
    verbs = ["moves left", "moves right", "stops", "turns around", "jumps", "walks away", "appears", "waves"]
    corpus = [
        template.QUESTION_TEMPLATE,
        template.ANSWER_FORMAT,
        "You are a helpful assistant.",
        "system",
        "user",
    ]
    corpus += ["assistant", "<think>", "</think>", "<answer>", "</answer>", "Target ID:", "Time range:"]
    for _ in range(n_queries):
        q = f"the {rng.choice(colours)} {rng.choice(things)} {rng.choice(verbs)}"
        tid = int(rng.integers(1, 20))
        s = float(rng.uniform(0, 30))
        e = s + float(rng.uniform(0.5, 10))
        corpus.append(template.question_text(q))
        corpus.append(template.format_answer(tid, s, e, think=f"The {q} happens from {s:.2f} to {e:.2f}."))
    corpus += [f"{i}" for i in range(100)] + [f"{i / 100:.2f}" for i in range(0, 3000, 7)]
    return corpus


def build_tiny_policy(p: TinyModelParams) -> tuple[Any, Any]:
    """A tiny random-weight Qwen2.5-VL and its processor, deterministic for ``p`` (seed included)."""
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from stvg.training.tokenizer import build_tokenizer, special_token_ids

    tok = build_tokenizer(tokenizer_corpus(p.seed), p.vocab_size)
    ids = special_token_ids(tok)
    head_dim = p.hidden_size // p.num_heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # (t, h, w); sums to head_dim / 2
    vision_heads = max(1, p.vision_hidden_size // 16)
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": p.vocab_size,
            "hidden_size": p.hidden_size,
            "intermediate_size": 2 * p.hidden_size,
            "num_hidden_layers": p.num_layers,
            "num_attention_heads": p.num_heads,
            "num_key_value_heads": max(1, p.num_heads // 2),
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": p.vision_depth,
            "hidden_size": p.vision_hidden_size,
            "intermediate_size": 2 * p.vision_hidden_size,
            "num_heads": vision_heads,
            "out_hidden_size": p.hidden_size,
            "fullatt_block_indexes": [p.vision_depth - 1],
            "window_size": 112,
            "tokens_per_second": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(p.seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    small = {"min_pixels": PATCH * PATCH, "max_pixels": 256 * PATCH * PATCH}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**small),
        video_processor=Qwen2VLVideoProcessor(**small),
        tokenizer=tok,
        chat_template=tok.chat_template,
    )
    return model, processor


def disable_kv_cache(model: Any) -> None:
    """No KV cache in the forward passes (gradient checkpointing recomputes them). Qwen2.5-VL reads the
    flag from its text config; setting it on the outer config changes nothing but the saved file."""
    model.config.get_text_config().use_cache = False


def save_policy(
    model: Any, processor: Any, out_dir: str | Path, question_template: str | None = None
) -> None:
    """Weights, processor (tokenizer, chat template) and prompt template, loadable by ``load_policy``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    template.save_template(out, question_template or template.QUESTION_TEMPLATE)


def load_policy(path_or_id: str | Path, device: str = "cpu", dtype: str = "auto") -> tuple[Any, Any]:
    """Load Qwen2.5-VL and its processor from a local folder or a Hugging Face id (offline: local only)."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    source = str(path_or_id)
    if Path(source).exists() and not (Path(source) / "config.json").is_file():
        raise FileNotFoundError(
            f"{source} has no config.json; pass a save_pretrained folder or a Hugging Face id"
        )
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(source, dtype=torch_dtype)
        processor = AutoProcessor.from_pretrained(source)
    except OSError as exc:
        raise OSError(
            f"cannot load policy {source!r}: {exc}. Offline (HF_HUB_OFFLINE=1) only local folders and cached ids "
            "load; build the tiny model with `stvg base_model` or point train.model at a local checkpoint"
        ) from exc
    processor.tokenizer.padding_side = "left"
    return model.to(device), processor


def video_metadata(sampling: dict[str, Any]) -> Any:
    """``VideoMetadata`` for frames sampled as the prompt stage recorded (``MaskDB.sampling``)."""
    from transformers.video_utils import VideoMetadata

    indices = [int(i) for i in sampling["frame_indices"]]
    return VideoMetadata(
        total_num_frames=int(sampling["n_frames"]),
        fps=float(sampling["native_fps"]),
        frames_indices=indices,
        width=int(sampling.get("width") or 0) or None,
        height=int(sampling.get("height") or 0) or None,
        duration=float(sampling["n_frames"]) / float(sampling["native_fps"]),
    )


def encode_video_prompts(
    processor: Any, texts: Sequence[str], videos: Sequence[np.ndarray], samplings: Sequence[dict[str, Any]]
) -> Any:
    """Tokenize chat-templated texts with their videos: input_ids, pixel_values_videos, video_grid_thw,
    second_per_grid_ts and mm_token_type_ids (the last is what Qwen2.5-VL's 3-D RoPE needs).

    ``videos`` are (T, H, W, 3) uint8 RGB arrays, already sampled and sized by the prompt stage. An odd
    frame count is padded by the processor (last frame repeated), as in qwen-vl-utils.
    """
    if len(texts) != len(videos) or len(videos) != len(samplings):
        raise ValueError(
            f"texts/videos/samplings differ in length: {len(texts)}, {len(videos)}, {len(samplings)}"
        )
    arrays, metas = [], []
    for frames, sampling in zip(videos, samplings, strict=True):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"video must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
        if len(frames) != len(sampling["frame_indices"]):
            raise ValueError(
                f"video has {len(frames)} frames but its sampling lists {len(sampling['frame_indices'])} indices"
            )
        arrays.append(frames)
        metas.append(video_metadata(sampling))
    area = max(int(f.shape[1]) * int(f.shape[2]) for f in arrays)
    size = {"shortest_edge": PATCH * PATCH, "longest_edge": max(area, PATCH * PATCH * 4)}
    return processor(
        text=list(texts),
        videos=arrays,
        video_metadata=metas,
        do_sample_frames=False,
        size=size,
        cap_pixels_per_frame=False,  # the prompt stage already applied the per-frame cap
        padding=True,
        return_tensors="pt",
    )


def chat_texts(processor: Any, messages: Sequence[list[dict[str, Any]]]) -> list[str]:
    """Render chat messages to prompt text with the assistant header appended."""
    return [processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]


SOURCE_FILE = "source.json"


def weights_hash(model: Any) -> str:
    """SHA-256 over the model's tensors (names, dtypes, shapes, bytes): equal iff the weights are equal."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())  # bytes, so bf16 hashes too
    return digest.hexdigest()


def resolve_base_model(base_dir: str | Path) -> str:
    """What to load for the base model folder the ``base_model`` stage wrote: itself (a built model) or
    the local path / hub id recorded in its ``source.json``."""
    base = Path(base_dir)
    if (base / "config.json").is_file():
        return str(base)
    source = base / SOURCE_FILE
    if source.is_file():
        import json

        return str(json.loads(source.read_text(encoding="utf-8"))["model"])
    raise FileNotFoundError(
        f"{base} holds neither a model (config.json) nor {SOURCE_FILE}; run `stvg base_model`"
    )
