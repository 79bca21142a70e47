"""TRL's GRPOTrainer with true video input: the smallest override that keeps the video in the loss.

TRL 1.16 (pinned) sends a ``{"type": "video"}`` prompt to generation, but ``_generate_and_score_completions``
rebuilds the forward inputs from images only and ``_compute_loss`` forwards no video keys, so the policy
trains as if there were no video (measured: 0 of 30 vision tensors change). ``VideoGRPOTrainer`` does not
fork the trainer; it extends ``__init__`` (suppress sampling ``<|video_pad|>``, as TRL already does for the
image placeholder) and overrides five methods, each a thin wrapper around TRL's (or the Trainer's) own:

- ``_tokenize_prompts``: encodes the rollout's videos with their ``VideoMetadata`` (real frame timing, so
  ``second_per_grid_ts`` is right) and hands TRL's generation ``pixel_values_videos``, ``video_grid_thw``,
  ``second_per_grid_ts`` and ``mm_token_type_ids``; it keeps the per-sequence video tensors on the trainer.
- ``_generate_and_score_completions``: exposes the batch's frames to ``_tokenize_prompts`` and attaches the
  per-sequence video tensors to its output, so they are shuffled and split with the sequences they belong to.
- ``compute_loss``: makes the loss batch's video tensors current for the duration of TRL's loss.
- ``_get_per_token_logps_and_entropies``: injects the current video tensors, sliced per chunk, into the
  model call (old-policy, reference and loss passes alike).
- ``_prepare_input``: under DeepSpeed the Trainer casts every float input of generation to bf16, but
  ``second_per_grid_ts`` sets the video's MRoPE time positions (``arange(t) * 2 * it``, floored): bf16
  would sample rollouts under other positions than the loss passes score (0.96 rounds to 0.957, and
  position 24 becomes 25). It is moved to the device only, as the loss passes move it.

``video_in_loss=False`` (``build_trainer``) reproduces TRL's stock behaviour -- the video reaches
generation but no log-prob pass (old-policy, reference, loss) -- as an ablation: it is how
``training.toy`` shows that the override is what lets GRPO learn from the frames.

Dataset rows carry ``video`` (T, H, W, 3) uint8 RGB frames and ``sampling`` (``MaskDB.sampling``) beside
the ``prompt``; ``video_dataset`` builds such a ``datasets.Dataset`` with lazily decoded frames.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stvg.training import template
from stvg.training.policy import chat_texts, encode_video_prompts

VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
UNCAST_KEYS = ("second_per_grid_ts",)  # float inputs that must keep their precision (positions, not values)
FrameLoader = Callable[[str], tuple[np.ndarray, dict[str, Any]]]


def video_dataset(
    rows: Sequence[dict[str, Any]],
    load_frames: FrameLoader,
    question_template: str = template.QUESTION_TEMPLATE,
    cache_videos: int = 8,
) -> Any:
    """A ``datasets.Dataset`` of labelled samples whose prompt, frames and sampling are built on access.

    ``rows`` need ``video_id``, ``query``, ``start_s``, ``end_s`` and ``target_id`` (extra keys are kept
    if they are scalars). ``load_frames(video_id) -> (frames, sampling)``; the most recent videos are
    cached because GRPO reads each sample once per generation in a group.
    """
    from datasets import Dataset

    keep = ("sample_id", "video_id", "query", "start_s", "end_s", "target_id", "duration_s")
    columns: dict[str, list[Any]] = {k: [] for k in keep}
    for i, row in enumerate(rows):
        missing = [k for k in ("video_id", "query", "start_s", "end_s", "target_id") if k not in row]
        if missing:
            raise ValueError(
                f"label row {i} ({row.get('sample_id', '?')}) lacks {missing}; re-run the label stage"
            )
        columns["sample_id"].append(str(row.get("sample_id", i)))
        columns["video_id"].append(str(row["video_id"]))
        columns["query"].append(str(row["query"]))
        columns["start_s"].append(float(row["start_s"]))
        columns["end_s"].append(float(row["end_s"]))
        columns["target_id"].append(int(row["target_id"]))
        columns["duration_s"].append(float(row.get("duration_s", np.nan)))
    cached = functools.lru_cache(maxsize=cache_videos)(load_frames)

    def materialise(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        loaded = [cached(v) for v in batch["video_id"]]
        return {
            **batch,
            "prompt": [template.build_messages(q, question_template) for q in batch["query"]],
            "video": [frames for frames, _ in loaded],
            "sampling": [sampling for _, sampling in loaded],
        }

    ds = Dataset.from_dict(columns)
    ds.set_transform(materialise)
    return ds


@functools.cache
def _video_grpo_trainer_class() -> type:
    from trl import GRPOTrainer

    class VideoGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose generation AND loss passes see the video (see the module docstring)."""

        _rollout_videos: list[tuple[np.ndarray, dict[str, Any]]] | None = None
        _video_rows: dict[str, Any] | None = None

        def __init__(self, *args: Any, video_in_loss: bool = True, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.video_in_loss = video_in_loss
            # TRL suppresses sampling the image placeholder; a sampled video placeholder would likewise
            # mismatch the video features in the loss pass ("tokens: 641, features: 640").
            video_token = getattr(self.model.config, "video_token_id", None)
            gen = getattr(self, "generation_config", None)
            if video_token is not None and gen is not None:
                suppress = sorted({*(gen.suppress_tokens or []), int(video_token)})
                gen.suppress_tokens = suppress
                self.generation_kwargs["suppress_tokens"] = suppress

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            if not inputs or "video" not in inputs[0]:
                return super()._generate_and_score_completions(inputs)
            self._rollout_videos = [(x["video"], x["sampling"]) for x in inputs]
            try:
                output = super()._generate_and_score_completions(inputs)
                rows = self._video_rows
            finally:
                self._rollout_videos = None
                self._video_rows = None
            if rows is None:
                raise RuntimeError(
                    "video prompts were not encoded: TRL's tokenization path changed under the override"
                )
            if self.video_in_loss:  # per-sequence, so TRL's shuffle/split keeps each video with its sequence
                output.update(rows)
            return output

        def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict[str, Any]]:
            if self._rollout_videos is None:
                return super()._tokenize_prompts(prompts)
            videos = [v for v, _ in self._rollout_videos]
            samplings = [s for _, s in self._rollout_videos]
            enc = encode_video_prompts(
                self.processing_class, chat_texts(self.processing_class, prompts), videos, samplings
            )
            keep = enc["attention_mask"].bool()
            prompt_ids = [ids[m].tolist() for ids, m in zip(enc["input_ids"], keep, strict=True)]
            mm_types = [t[m].tolist() for t, m in zip(enc["mm_token_type_ids"], keep, strict=True)]
            per_video = enc["video_grid_thw"].prod(-1).tolist()
            self._video_rows = {
                "pixel_values_videos": list(enc["pixel_values_videos"].split(per_video, dim=0)),
                "video_grid_thw": enc["video_grid_thw"],
                "second_per_grid_ts": enc["second_per_grid_ts"],
            }
            fields = {k: enc[k] for k in VIDEO_KEYS}
            fields["mm_token_type_ids"] = mm_types  # per-token: TRL left-pads it like the prompt ids
            return prompt_ids, None, fields

        def _prepare_input(self, data: Any) -> Any:
            if not isinstance(data, dict) or not any(k in data for k in UNCAST_KEYS):
                return super()._prepare_input(data)
            prepared = {}
            for key, value in data.items():
                uncast = key in UNCAST_KEYS and hasattr(value, "to")
                prepared[key] = value.to(self.args.device) if uncast else super()._prepare_input(value)
            return type(data)(prepared)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "pixel_values_videos" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Copy, never pop: with num_iterations > 1 TRL reuses the buffered batch.
            self._video_rows = {k: inputs[k] for k in VIDEO_KEYS}
            rest = {k: v for k, v in inputs.items() if k not in VIDEO_KEYS}
            try:
                return super().compute_loss(model, rest, return_outputs, num_items_in_batch)
            finally:
                self._video_rows = None

        def _get_per_token_logps_and_entropies(
            self,
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size=None,
            compute_entropy=False,
            compute_aux_loss=False,
            **kwargs: Any,
        ):
            rows = self._video_rows if self.video_in_loss else None  # ablation: every log-prob pass text-only
            if rows is None:
                return super()._get_per_token_logps_and_entropies(
                    model,
                    input_ids,
                    attention_mask,
                    logits_to_keep,
                    batch_size,
                    compute_entropy,
                    compute_aux_loss,
                    **kwargs,
                )
            import torch

            if any(v is not None for v in kwargs.values()):
                raise ValueError(f"image and video inputs together are not supported: {sorted(kwargs)}")
            n = input_ids.size(0)
            if len(rows["pixel_values_videos"]) != n:
                raise RuntimeError(f"{len(rows['pixel_values_videos'])} videos for {n} sequences")
            batch_size = batch_size or n
            device = input_ids.device
            video_id = self.processing_class.video_token_id
            image_id = self.processing_class.image_token_id
            logps, entropies, aux = [], [], []
            for start in range(0, n, batch_size):
                end = min(start + batch_size, n)
                ids = input_ids[start:end]
                mm_types = (ids == image_id).long() + 2 * (ids == video_id).long()  # Qwen: 1 image, 2 video
                video_inputs = {
                    "pixel_values_videos": torch.cat(rows["pixel_values_videos"][start:end]).to(device),
                    "video_grid_thw": rows["video_grid_thw"][start:end].to(device),
                    "second_per_grid_ts": rows["second_per_grid_ts"][start:end].to(device),
                    "mm_token_type_ids": mm_types,
                }
                lp, ent, ax = super()._get_per_token_logps_and_entropies(
                    functools.partial(model, **video_inputs),
                    ids,
                    attention_mask[start:end],
                    logits_to_keep,
                    batch_size=end - start,
                    compute_entropy=compute_entropy,
                    compute_aux_loss=compute_aux_loss,
                )
                logps.append(lp)
                entropies.append(ent)
                aux.append(ax)
            return (
                torch.cat(logps, dim=0),
                torch.cat(entropies, dim=0) if compute_entropy else None,
                torch.stack(aux).mean() if compute_aux_loss else None,
            )

    return VideoGRPOTrainer


def build_trainer(**kwargs: Any) -> Any:
    """A ``VideoGRPOTrainer`` (TRL is imported lazily); takes GRPOTrainer's keyword arguments, and
    ``video_in_loss`` (default True; False is the stock-TRL ablation)."""
    return _video_grpo_trainer_class()(**kwargs)
