"""Score answers (``Target ID: N, Time range: s to e``) against the benchmark: ID -> tube -> official metrics.

Every policy (the trained model and the baselines) goes through the same path: parse the last
``<answer>`` block, look up the answered ID's box tube in the mask database, and score it with
``evaluation.metrics.score_tubes`` (one batch per policy), the scorer behind ``score_tube``, which the
label stage's prompting ceiling uses, so the two cannot drift apart.

Two spatial scores per answer, reported side by side:

- ``strict`` (the headline numbers): only the answered ID's own boxes; a frame where it has no mask
  scores IoU 0, an ID that is not in the video scores 0;
- ``repaired``: the official ``evaluate.py`` fallbacks (``evaluation.fallbacks``) fill such frames,
  with the frames each fallback filled counted, so a promotion never rests on a hidden heuristic.
  Fallbacks run, and are counted, only on the frames the metric reads (``metrics.read_frames``: the
  GT-predicted overlap, sampled as the protocol samples it), as the official loop over the overlap
  does; a box filled anywhere else could not change the score.

Each answer that scores 0 for a reason carries a failure kind (``FAILURE_KINDS``), counted in the
metrics as ``failures/<kind>``.

Native frames that were not tracked (``prompt.track_fps`` below native) read the nearest tracked
frame in both, exactly as the ceiling does (``tubes.fill_untracked``); mask boxes are read as
the protocol reads them (``tubes.protocol_boxes``: ``stvg-r1`` ends them on the last pixel).
Frames past the end of the video hold no box (the official loop finds no mask file there).

Baselines: ``oracle`` answers each sample's voted label and its exact GT seconds (so its strict score
equals the label stage's prompting ceiling, sample by sample); ``random`` answers a uniformly drawn
instance ID of the video and a uniformly drawn span, seeded. One seeded draw over a small benchmark
can be lucky (or unlucky), so ``random_reference`` also scores ``evaluate.random_draws`` independent
draws and reports their distribution and the share of draws the policy scores above: "beats the random
baseline" is then a statement about the baseline, not about one draw of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from stvg.evaluation.fallbacks import FALLBACKS, repaired_tube
from stvg.evaluation.metrics import (
    TubeInput,
    TubeProtocol,
    TubeScores,
    aggregate_by_group,
    read_frames,
    score_tubes,
    tube_input,
)
from stvg.records import Box, Sample
from stvg.training.answer import ParsedAnswer, parse_answer
from stvg.tubes import fill_untracked, protocol_boxes, tracked_grid

ORACLE_FORMAT = "<think>oracle</think><answer>Target ID: {id}, Time range: {s:.6f} to {e:.6f}</answer>"
HEADLINE = ("m_tIoU", "m_vIoU")
# what ``random_reference`` reports of the random baseline's runs, as ``random/<stat>/<headline metric>``
RANDOM_STATS = ("expected", "p95", "below_policy")
# why an answer scored 0: nothing answered, not parsable, a reversed span, a zero-length union, or an
# ID the video does not have (strict vIoU 0; its tIoU still counts)
FAILURE_KINDS = ("no_answer", "unparsable", "reversed", "empty_union", "unknown_id")


class TrackSource(Protocol):
    """The part of the mask database evaluation reads (``prompting.maskdb.MaskDB``)."""

    def has(self, video_id: str) -> bool: ...
    def boxes_by_frame(self, video_id: str) -> dict[int, dict[int, Box]]: ...
    def instance_ids(self, video_id: str) -> list[int]: ...
    def summary(self, video_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ScoredAnswer:
    """One answer of one policy to one sample, parsed and scored both ways."""

    policy: str
    sample_id: str
    video_id: str
    sentence_type: str
    text: str
    parsed: ParsedAnswer
    id_in_video: bool
    tiou: float
    viou: float  # strict
    viou_repaired: float
    fallback_frames: dict[str, int]  # frames each fallback filled, among the frames the metric reads
    failure: str | None  # one of FAILURE_KINDS, None when the answer was scored normally

    def to_record(self) -> dict[str, Any]:
        """One line of predictions.jsonl."""
        p = self.parsed
        return {
            "policy": self.policy,
            "sample_id": self.sample_id,
            "video_id": self.video_id,
            "sentence_type": self.sentence_type,
            "text": self.text,
            "parse_ok": p.ok,
            "parse_reason": p.reason,
            "target_id": p.target_id,
            "start_s": p.start_s if p.ok else None,
            "end_s": p.end_s if p.ok else None,
            "id_in_video": self.id_in_video,
            "tiou": self.tiou,
            "viou": self.viou,
            "viou_repaired": self.viou_repaired,
            "fallback_frames": self.fallback_frames,
            "failure": self.failure,
        }


def oracle_answers(samples: Sequence[Sample], labels: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The voted label and exact GT seconds of each sample ("" when the sample has no label)."""
    out = []
    for s in samples:
        lab = labels.get(s.sample_id)
        if lab is None or lab.get("target_id") is None or s.gt_span_s is None:
            out.append("")
        else:
            out.append(ORACLE_FORMAT.format(id=int(lab["target_id"]), s=s.gt_span_s[0], e=s.gt_span_s[1]))
    return out


def random_answers(
    samples: Sequence[Sample], db: TrackSource, seed: int | np.random.SeedSequence
) -> list[str]:
    """A uniformly drawn instance of the video and a uniformly drawn span, reproducible by seed."""
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        ids = db.instance_ids(s.video_id) if db.has(s.video_id) else []
        if not ids or s.duration_s <= 0:
            out.append("")
            continue
        a, b = sorted(rng.uniform(0.0, s.duration_s, size=2))
        out.append(ORACLE_FORMAT.format(id=int(rng.choice(ids)), s=a, e=b).replace("oracle", "random"))
    return out


def random_draw_scores(
    samples: Sequence[Sample],
    db: TrackSource,
    protocol: TubeProtocol,
    seed: int,
    draws: int,
    parse: Callable[[str], ParsedAnswer] = parse_answer,
) -> dict[str, np.ndarray]:
    """Each headline metric over ``draws`` independent runs of the random baseline, one value per run.

    The draws' seeds are spawned from ``seed`` (``numpy.random.SeedSequence``), so the distribution
    is as reproducible as the one seeded draw; every run is scored through ``score_answers``, all
    runs in one batch.
    """
    if draws < 1 or not samples:
        return {k: np.zeros(0) for k in HEADLINE}
    texts = [t for s in np.random.SeedSequence(seed).spawn(draws) for t in random_answers(samples, db, s)]
    rows = score_answers("random", list(samples) * draws, texts, db, protocol, parse)
    n = len(samples)
    runs = [summarise(rows[i * n : (i + 1) * n], protocol, by_sentence_type=False) for i in range(draws)]
    return {k: np.array([r[k] for r in runs], dtype=np.float64) for k in HEADLINE}


def random_reference(draw_scores: Mapping[str, np.ndarray], policy: Mapping[str, float]) -> dict[str, float]:
    """``random/expected/<m>`` (the mean over draws), ``random/p95/<m>``, and ``random/below_policy/<m>``:
    the share of draws scoring below the policy (a tie counts half), for each headline metric."""
    out: dict[str, float] = {}
    for k, values in draw_scores.items():
        if not len(values) or k not in policy:
            continue
        stats = {
            "expected": values.mean(),
            "p95": np.quantile(values, 0.95),
            "below_policy": np.mean(values < policy[k]) + 0.5 * np.mean(values == policy[k]),
        }
        out.update({f"random/{stat}/{k}": float(stats[stat]) for stat in RANDOM_STATS})
    return out


def failure_kind(
    text: str, parsed: ParsedAnswer, metric_failure: str | None, id_in_video: bool
) -> str | None:
    """The ``FAILURE_KINDS`` entry of one answer (None: scored normally)."""
    if not parsed.ok:
        if not (isinstance(text, str) and text.strip()):
            return "no_answer"
        return "reversed" if parsed.reason.startswith("reversed") else "unparsable"
    if metric_failure in ("reversed", "empty_union"):
        return metric_failure
    return None if id_in_video else "unknown_id"


def score_answers(
    policy: str,
    samples: Sequence[Sample],
    texts: Sequence[str],
    db: TrackSource,
    protocol: TubeProtocol,
    parse: Callable[[str], ParsedAnswer] = parse_answer,
) -> list[ScoredAnswer]:
    """Parse and score each sample's answer (strict and repaired), all samples in one batch."""
    if len(samples) != len(texts):
        raise ValueError(f"{policy}: {len(texts)} answers for {len(samples)} samples")
    parsed_all, in_video_all, counts_all = [], [], []
    strict_items: list[TubeInput] = []
    repaired_items: list[TubeInput] = []
    videos: dict[str, tuple[dict[int, dict[int, Box]], list[int]]] = {}
    for sample, text in zip(samples, texts, strict=True):
        parsed = parse(text)
        tracks, tracked = _video_tracks(db, sample.video_id, protocol, videos)
        span = (parsed.start_s, parsed.end_s) if parsed.ok else None
        in_video = bool(parsed.ok and any(parsed.target_id in objs for objs in tracks.values()))
        item = tube_input(sample, span, {}, protocol)
        counts = dict.fromkeys(FALLBACKS, 0)
        strict_boxes: dict[int, Box] = {}
        repaired_boxes: dict[int, Box] = {}
        if span is not None:
            frames = _existing(read_frames(item, protocol).tolist(), sample.n_frames)
            own = {f: objs[parsed.target_id] for f, objs in tracks.items() if parsed.target_id in objs}
            strict_boxes = fill_untracked(own, frames, tracked)
            dense = {f: tracks.get(t, {}) for f, t in _nearest_map(frames, tracked).items()}
            repaired = repaired_tube(dense, int(parsed.target_id), frames)  # type: ignore[arg-type]
            repaired_boxes, counts = repaired.boxes, repaired.fallback_counts
        parsed_all.append(parsed)
        in_video_all.append(in_video)
        counts_all.append(counts)
        strict_items.append(replace(item, pred_boxes=strict_boxes))
        repaired_items.append(replace(item, pred_boxes=repaired_boxes))
    strict = score_tubes(strict_items, protocol)
    rep = score_tubes(repaired_items, protocol)
    out = []
    for i, (sample, text) in enumerate(zip(samples, texts, strict=True)):
        out.append(
            ScoredAnswer(
                policy=policy,
                sample_id=sample.sample_id,
                video_id=sample.video_id,
                sentence_type=sample.sentence_type,
                text=text,
                parsed=parsed_all[i],
                id_in_video=in_video_all[i],
                tiou=float(strict.tiou[i]),
                viou=float(strict.viou[i]),
                viou_repaired=float(rep.viou[i]),
                fallback_frames=counts_all[i],
                failure=failure_kind(text, parsed_all[i], strict[i].failure, in_video_all[i]),
            )
        )
    return out


def summarise(
    answers: Sequence[ScoredAnswer], protocol: TubeProtocol, by_sentence_type: bool
) -> dict[str, float]:
    """Flat metrics of one policy: strict headline, ``repaired/…``, parse and ID rates, fallback frames,
    and ``failures/<kind>`` counts.

    With ``by_sentence_type`` (VidSTG) the metrics are also given per group as ``declarative/…``.
    """
    n = len(answers)
    strict = TubeScores(
        tiou=np.array([a.tiou for a in answers], dtype=np.float64),
        viou=np.array([a.viou for a in answers], dtype=np.float64),
        failure=np.zeros(n, dtype=np.int8),
    )
    repaired = TubeScores(
        strict.tiou, np.array([a.viou_repaired for a in answers], dtype=np.float64), strict.failure
    )
    groups = [a.sentence_type for a in answers]
    out: dict[str, float] = {}
    for prefix, scores in (("", strict), ("repaired/", repaired)):
        agg = aggregate_by_group(scores, groups, protocol)
        for group, values in agg.items():
            if group != "all" and not by_sentence_type:
                continue
            gp = "" if group == "all" else f"{group}/"
            for k, v in values.items():
                if k in HEADLINE or k.startswith(("vIoU@", "tIoU@")):
                    out[f"{prefix}{gp}{k}"] = float(v)
    out["n"] = float(n)
    out["parse_rate"] = float(np.mean([a.parsed.ok for a in answers])) if n else 0.0
    out["id_in_video_rate"] = float(np.mean([a.id_in_video for a in answers])) if n else 0.0
    for name in FALLBACKS:
        out[f"repaired/{name}_frames"] = float(sum(a.fallback_frames.get(name, 0) for a in answers))
    for kind in FAILURE_KINDS:
        out[f"failures/{kind}"] = float(sum(a.failure == kind for a in answers))
    return out


def _video_tracks(
    db: TrackSource,
    video_id: str,
    protocol: TubeProtocol,
    memo: dict[str, tuple[dict[int, dict[int, Box]], list[int]]],
) -> tuple[dict[int, dict[int, Box]], list[int]]:
    """The video's tracks as ``protocol`` reads them and its tracked frames (empty when not prompted),
    read once per video and call (a benchmark asks several questions of one video)."""
    if video_id not in memo:
        if db.has(video_id):
            tracks = _protocol_tracks(db.boxes_by_frame(video_id), protocol)
            memo[video_id] = (tracks, tracked_grid(db.summary(video_id), tracks))
        else:
            memo[video_id] = ({}, [])
    return memo[video_id]


def _protocol_tracks(
    tracks: Mapping[int, Mapping[int, Box]], protocol: TubeProtocol
) -> dict[int, dict[int, Box]]:
    """Every frame's mask boxes as ``protocol`` reads them (``tubes.protocol_boxes``)."""
    return {f: protocol_boxes(objs, protocol) for f, objs in tracks.items()}


def _existing(frames: Sequence[int], n_frames: int) -> list[int]:
    """The frames that exist in the video (all of them when its length is unknown)."""
    return [f for f in frames if 0 <= f < n_frames] if n_frames > 0 else list(frames)


def _nearest_map(frames: Sequence[int] | range, tracked: Sequence[int]) -> dict[int, int]:
    """Each frame -> its nearest tracked frame (the earlier on a tie); frames with none are left out."""
    if not tracked:
        return {}
    t = np.asarray(tracked, dtype=np.int64)
    f = np.asarray(list(frames), dtype=np.int64)
    pos = np.clip(np.searchsorted(t, f), 1, len(t) - 1) if len(t) > 1 else np.zeros_like(f)
    if len(t) == 1:
        return {int(x): int(t[0]) for x in f}
    left, right = t[pos - 1], t[pos]
    pick = np.where(f - left <= right - f, left, right)
    return {int(x): int(p) for x, p in zip(f, pick, strict=True)}
