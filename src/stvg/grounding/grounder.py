"""Ground a query in a raw video: prompt it, ask the policy, map the answered ID to its box tube.

``Grounder`` holds one loaded model (a verified ``bundle.Bundle``): the prompting configuration it was
trained with and the policy. Loading is separate from answering (``load``), so a server pays it once;
each ``ground`` call times its phases — ``decode`` (probe, hash, frame decoding while tracking),
``prompt`` (detection, tracking, repair, ID rendering, sampling), ``policy`` (generation), ``tube``
(parsing the answer and reading the answered ID's boxes from the mask database) — and ``render``
times the annotated mp4. Prompted videos are kept in a mask database (the cache folder), so a second
query on a video skips prompting; a server bounds it to ``ground.cache_videos`` videos.

The answer is parsed by the project's one parser (``training.answer.parse_answer``) and the tube is
the mask database's own (``MaskDB.tube``), the same lookup evaluation scores, so a served answer and an
evaluated one cannot differ in how the ID becomes boxes. Requests are answered one at a time: the
CPU (or the one GPU) is the bottleneck, and the database index is rewritten after each new video.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stvg.config import GroundParams
from stvg.grounding.bundle import Bundle
from stvg.grounding.inputs import GroundingInputError, check_duration, check_query
from stvg.grounding.prompter import (
    Progress,
    PromptedVideo,
    PromptingError,
    VideoInfo,
    VideoPrompter,
    probe_video,
    video_hash,
)
from stvg.grounding.result import GroundingResult

VIDEO_ID_CHARS = 16  # prefix of the content hash naming a video in the cache


@dataclass(frozen=True)
class GroundOptions:
    """Per-request decoding options (the served params schema, minus ``return_frames``)."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    seed: int

    @classmethod
    def from_params(cls, defaults: GroundParams, **overrides: Any) -> GroundOptions:
        """The model's defaults with the request's overrides, checked (GroundingInputError names the bad one)."""
        unknown = sorted(set(overrides) - {"max_new_tokens", "do_sample", "temperature", "seed"})
        if unknown:
            raise GroundingInputError(
                f"unknown option(s) {unknown}; use max_new_tokens, do_sample, temperature, seed"
            )
        values = {
            "max_new_tokens": defaults.max_new_tokens,
            "do_sample": defaults.do_sample,
            "temperature": defaults.temperature,
            "seed": defaults.seed,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        options = cls(
            max_new_tokens=_integer(values["max_new_tokens"], "max_new_tokens"),
            do_sample=bool(values["do_sample"]),
            temperature=float(values["temperature"]),
            seed=_integer(values["seed"], "seed"),
        )
        if options.max_new_tokens < 1:
            raise GroundingInputError(f"max_new_tokens must be >= 1, got {options.max_new_tokens}")
        if not options.temperature > 0:
            raise GroundingInputError(f"temperature must be > 0, got {options.temperature}")
        return options


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise GroundingInputError(f"{name} must be an integer, got {value!r}")
    return int(value)


class Grounder:
    """A loaded grounding model: raw video + query -> ``GroundingResult``."""

    def __init__(
        self,
        bundle: Bundle,
        cache_dir: Path,
        *,
        device: str | None = None,
        max_video_s: float | None = None,
        cache_videos: int | None = None,
        model_info: dict[str, str] | None = None,
    ) -> None:
        self.bundle = bundle
        self.device = device or _default_device()
        self.max_video_s = max_video_s or bundle.ground.max_video_s
        self.cache_videos = cache_videos  # None: keep every prompted video (the CLI's output folder)
        self.model_info = {"bundle": bundle.identity[:16], **(model_info or {})}
        self.prompter = VideoPrompter(bundle.params, bundle.detector_path, Path(cache_dir), self.device)
        self._answerer: Any = None
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the policy and the detector now (a server before its first request)."""
        from stvg.training.inference import Answerer

        if self._answerer is None:
            self._answerer = Answerer(self.bundle.policy_dir, self.device)
        self.prompter.load()

    def options(self, **overrides: Any) -> GroundOptions:
        """Decoding options: the model's defaults (``ground`` params) with ``overrides``."""
        return GroundOptions.from_params(self.bundle.ground, **overrides)

    def check_video(self, path: Path, name: str) -> VideoInfo:
        """Probe the video and refuse one that is not a video or is too long (GroundingInputError)."""
        info = probe_video(path, name)
        check_duration(info.duration_s, self.max_video_s, name)
        return info

    def ground(
        self,
        path: Path,
        query: str,
        options: GroundOptions,
        *,
        name: str = "",
        progress: Progress | None = None,
    ) -> GroundingResult:
        """Answer ``query`` on the video at ``path``; bad input raises GroundingInputError."""
        query = check_query(query)
        name = name or str(path)
        with self._lock:
            t0 = time.perf_counter()
            info = self.check_video(path, name)
            content = video_hash(path)
            video_id = content[:VIDEO_ID_CHARS]
            base = GroundingResult(
                video=name, video_id=video_id, query=query, answer="", ok=False, fps=info.fps,
                n_frames=info.n_frames, width=info.width, height=info.height, model=dict(self.model_info),
            )  # fmt: skip
            probe_s = time.perf_counter() - t0
            try:
                prompted = self.prompter.prompt(path, video_id, content, progress)
            except PromptingError as exc:  # e.g. nothing detected: a valid video with nothing to ground
                cause = str(exc).replace(f"{video_id}: ", "")
                timings = {"decode_s": probe_s, "prompt_s": time.perf_counter() - t0 - probe_s}
                return replace(base, error=f"video {name}: {cause}", timings=timings)
            self._remember(video_id)
            timings = {
                "decode_s": probe_s + prompted.timings["decode_s"],
                "prompt_s": prompted.timings["prompt_s"],
            }
            t1 = time.perf_counter()
            answer = self._answer(prompted, query, options)
            timings["policy_s"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            result = resolve_answer(replace(base, answer=answer), prompted)
            timings["tube_s"] = time.perf_counter() - t2
        return replace(result, timings=timings)

    def render(self, path: Path, result: GroundingResult, out: Path) -> float:
        """Write the annotated mp4 of a grounded video; returns the seconds it took."""
        from stvg.grounding.annotate import annotate_video

        t0 = time.perf_counter()
        held = self.prompter.has(result.video_id)
        boxes = self.prompter.entry(result.video_id).boxes_by_frame() if held else {}
        annotate_video(path, result, boxes, out)
        return time.perf_counter() - t0

    def _answer(self, prompted: PromptedVideo, query: str, options: GroundOptions) -> str:
        if self._answerer is None:
            self.load()
        frames, sampling = prompted.policy_input()
        item = {"video": frames, "sampling": sampling, "query": query}
        return self._answerer.answer(
            [item],
            batch_size=1,
            max_new_tokens=options.max_new_tokens,
            do_sample=options.do_sample,
            seed=options.seed,
            temperature=options.temperature,
            progress=False,
        )[0]

    def _remember(self, video_id: str) -> None:
        self._recent[video_id] = None
        self._recent.move_to_end(video_id)
        if self.cache_videos is not None and len(self._recent) > self.cache_videos:
            while len(self._recent) > self.cache_videos:
                self._recent.popitem(last=False)
            self.prompter.keep_only(set(self._recent))


def resolve_answer(result: GroundingResult, prompted: PromptedVideo) -> GroundingResult:
    """Parse the policy's answer and attach the answered instance's tube over the answered span."""
    from stvg.training.answer import parse_answer

    parsed = parse_answer(result.answer)
    instances = tuple(prompted.instance_ids())
    result = replace(result, instances=instances)
    if not parsed.ok:
        return replace(
            result, error=f"the policy's answer is not parsable ({parsed.reason}): {result.answer[:200]!r}"
        )
    assert parsed.target_id is not None
    spans = {"target_id": int(parsed.target_id), "start_s": parsed.start_s, "end_s": parsed.end_s}
    if parsed.target_id not in instances:
        return replace(
            result,
            **spans,
            error=f"the policy answered ID {parsed.target_id}, which is no instance of this video "
            f"(its IDs: {', '.join(map(str, instances)) or 'none'})",
        )
    tube = prompted.tube(int(parsed.target_id), parsed.start_s, parsed.end_s)
    return replace(result, **spans, ok=True, tube=tube)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
