"""Batched answer generation for evaluation: the policy watches each prompted video and answers.

Greedy by default, and explicitly so: the official ``evaluate.py`` calls ``generate`` without sampling
arguments, so its decoding follows whatever the checkpoint's ``generation_config`` says (REFERENCE 7.2).
Here every decoding setting is passed on each call and the checkpoint's config is overridden, so
``do_sample=False`` really is greedy. The prompt is the template saved with the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stvg.training import template
from stvg.training.policy import chat_texts, encode_video_prompts, load_policy

log = logging.getLogger(__name__)


def generation_settings(
    generation_config: Any, max_new_tokens: int, do_sample: bool, temperature: float | None = None
) -> Any:
    """A copy of the checkpoint's generation config with the decoding mode forced (greedy unless sampling).

    Greedy keeps the checkpoint's other settings (its repetition penalty included), as the official
    ``evaluate.py`` does. Sampling draws from the whole distribution, as GRPO's rollouts do (TRL: top-k
    off, top-p 1, no repetition penalty): an instruct checkpoint's own sampling settings
    (Qwen2.5-VL-7B-Instruct: top-k 1, top-p 0.001) would make every sample the greedy answer, and
    transformers refills any setting left unset from the checkpoint, so each is set explicitly.
    """
    import copy

    cfg = copy.deepcopy(generation_config)
    cfg.max_new_tokens = int(max_new_tokens)
    cfg.do_sample = bool(do_sample)
    cfg.num_beams = 1
    if not do_sample:  # sampling knobs would only trigger warnings under greedy decoding
        cfg.temperature, cfg.top_p, cfg.top_k = None, None, None
        return cfg
    cfg.top_k, cfg.top_p, cfg.repetition_penalty = 0, 1.0, 1.0
    if temperature is not None:
        cfg.temperature = float(temperature)
    return cfg


class Answerer:
    """A loaded policy that answers prompted videos; load once, ask many times (grounding, serving).

    The prompt is the template saved with the model (``prompt_template.json``), or the official text
    for a model that ships none (``template.load_template``).
    """

    def __init__(self, policy_dir: str | Path, device: str | None = None) -> None:
        import torch

        self.policy_dir = policy_dir
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.processor = load_policy(policy_dir, device=self.device, dtype="auto")
        self.model.eval()
        self.question = template.load_template(policy_dir)

    def answer(
        self,
        items: Sequence[dict[str, Any]],
        batch_size: int = 4,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        seed: int = 0,
        temperature: float | None = None,
        progress: bool = True,
        normalize_query: bool = False,
    ) -> list[str]:
        """Completion text for each item (``{"video": (T,H,W,3) uint8 RGB, "sampling": dict, "query": str}``).

        Items are answered in order, ``batch_size`` at a time (prompts left-padded). The query goes into
        the prompt as written, as the official evaluation does; ``normalize_query`` applies the training
        normalisation (lower case, no trailing period) instead.
        """
        import torch
        from tqdm import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for i, item in enumerate(items):
            missing = [k for k in ("video", "sampling", "query") if k not in item]
            if missing:
                raise ValueError(f"item {i} ({item.get('sample_id', '?')}) lacks {missing}")
        gen_cfg = generation_settings(self.model.generation_config, max_new_tokens, do_sample, temperature)
        torch.manual_seed(seed)
        answers: list[str] = []
        batches = range(0, len(items), batch_size)
        for start in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            chunk = items[start : start + batch_size]
            messages = [template.build_messages(it["query"], self.question, normalize_query) for it in chunk]
            texts = chat_texts(self.processor, messages)
            enc = encode_video_prompts(
                self.processor, texts, [it["video"] for it in chunk], [it["sampling"] for it in chunk]
            )
            enc = enc.to(self.device)
            with torch.no_grad():
                out = self.model.generate(**enc, generation_config=gen_cfg)
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            answers.extend(self.processor.batch_decode(new_tokens, skip_special_tokens=True))
        return answers


def generate_answers(
    policy_dir: str | Path,
    items: Sequence[dict[str, Any]],
    batch_size: int = 4,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    normalize_query: bool = False,
) -> list[str]:
    """Load the policy and answer ``items`` once (see ``Answerer.answer``)."""
    return Answerer(policy_dir, device).answer(
        items,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        seed=seed,
        progress=progress,
        normalize_query=normalize_query,
    )
