"""Format warm-up of the tiny policy: the embedded default's stand-in for instruction tuning.

The paper starts GRPO from Qwen2.5-VL-7B-Instruct, which already answers in a format it is asked for.
A random tiny Qwen2.5-VL cannot: every completion is unparsable, every reward 0, every group's
advantage 0 — GRPO has nothing to learn from and the evaluation scores 0. So the base_model stage
teaches the tiny model the *answer format* alone: a few hundred steps of next-token training on the
project's prompt template with a random-noise video (random length and size), answered with a
random ID and a random time span in ``<think>…</think><answer>Target ID: N, Time range: s to e</answer>``.
Nothing of the task is in it (no benchmark data is read; answers are random), so whatever GRPO then
learns about grounding comes from its rewards. Departure from the paper (whose base model is already
instruct-tuned); it runs only for ``train.model: tiny`` with ``train.tiny.format_steps > 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stvg.training import template

SIZES = ((168, 224), (224, 308), (252, 336))  # (H, W), multiples of 28 (the tiny processor's patch)
FRAMES = (4, 8, 12, 16)  # sampled frames per video (2 fps: 2 to 8 s)
NATIVE_FPS = 10.0
QUERY_WORDS = (
    ("red", "green", "blue", "yellow", "purple", "white", "black"),
    ("square", "circle", "triangle", "man", "woman", "dog", "car"),
    ("moving left", "moving right", "that stops", "entering from the top", "after the circle stops"),
)


@dataclass(frozen=True)
class WarmupItem:
    """One random question: noise video, its sampling record, a query and the answer to imitate."""

    video: np.ndarray  # (T, H, W, 3) uint8
    sampling: dict[str, Any]
    query: str
    answer: str


def random_item(rng: np.random.Generator) -> WarmupItem:
    """A random question in the project's format (content random: nothing about the task leaks in)."""
    t = int(rng.choice(FRAMES))
    h, w = SIZES[int(rng.integers(len(SIZES)))]
    step = int(NATIVE_FPS / 2)  # 2 fps out of 10
    sampling = {
        "frame_indices": [i * step for i in range(t)],
        "n_frames": t * step,
        "native_fps": NATIVE_FPS,
        "width": w,
        "height": h,
    }
    video = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    query = " ".join(str(rng.choice(words)) for words in QUERY_WORDS)
    duration = t * step / NATIVE_FPS
    start, end = np.sort(rng.uniform(0.0, duration, size=2))
    target = int(rng.integers(1, 7))
    return WarmupItem(video, sampling, f"the {query}", warmup_answer(target, start, end))


def warmup_answer(target_id: int, start_s: float, end_s: float) -> str:
    """The completion the warm-up teaches: span and ID restated in ``<think>``, then the answer."""
    think = f"{start_s:.2f} to {end_s:.2f}; object {target_id}"
    return template.format_answer(target_id, start_s, end_s, think=think)


def _labels(input_ids: Any, attention_mask: Any, assistant_start: list[int]) -> Any:
    """Loss only on the answer: every token up to the last assistant header, and padding, is -100."""
    import torch

    labels = input_ids.clone()
    labels[attention_mask == 0] = -100
    n = len(assistant_start)
    for row in range(input_ids.shape[0]):
        ids = input_ids[row].tolist()
        starts = [i for i in range(len(ids) - n + 1) if ids[i : i + n] == assistant_start]
        if not starts:
            raise ValueError("chat template produced no assistant header to train the answer after")
        labels[row, : starts[-1] + n] = -100
    return labels if isinstance(labels, torch.Tensor) else torch.as_tensor(labels)


def warm_up_format(
    model: Any,
    processor: Any,
    *,
    steps: int,
    lr: float,
    batch: int,
    seed: int,
    make_item: Callable[[np.random.Generator], WarmupItem] = random_item,
    question_template: str = template.QUESTION_TEMPLATE,
) -> dict[str, float]:
    """Train ``model`` in place on random format-only questions (``make_item``, asked with
    ``question_template``); returns first/last loss and the parse rate of greedy answers to 8 fresh
    random questions (1.0: the format is learnt)."""
    import torch

    from stvg.training.answer import parse_answer
    from stvg.training.policy import chat_texts, encode_video_prompts

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tok = processor.tokenizer
    header = chat_texts(processor, [[{"role": "user", "content": "x"}]])[0]
    assistant_start = tok(header[header.rindex("<|im_start|>") :], add_special_tokens=False).input_ids
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        items = [make_item(rng) for _ in range(batch)]
        prompts = chat_texts(
            processor, [template.build_messages(it.query, question_template) for it in items]
        )
        texts = [p + it.answer + "<|im_end|>" for p, it in zip(prompts, items, strict=True)]
        enc = encode_video_prompts(
            processor, texts, [it.video for it in items], [it.sampling for it in items]
        )
        labels = _labels(enc["input_ids"], enc["attention_mask"], assistant_start)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    tok.padding_side = "left"  # generation continues every row from its last prompt token
    probe = [make_item(rng) for _ in range(8)]
    prompts = chat_texts(processor, [template.build_messages(it.query, question_template) for it in probe])
    enc = encode_video_prompts(processor, prompts, [it.video for it in probe], [it.sampling for it in probe])
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=64, do_sample=False)
    answers = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    parsed = [parse_answer(a) for a in answers]
    return {
        "format_steps": float(steps),
        "format_loss_first": losses[0] if losses else float("nan"),
        "format_loss_last": float(np.mean(losses[-10:])) if losses else float("nan"),
        "format_parse_rate": float(np.mean([p.ok for p in parsed])),
    }
