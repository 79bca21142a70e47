"""``stvg score``: official metrics of a submission file in a benchmark's own submission format.

    stvg score FORMAT SUBMISSION ANNOTATION [--protocol official|tubedetr|stvg-r1|st-align]
                                            [--threshold-op '>'|'>='] [--end-exclusive] [--mask-dict PATH]
                                            [--vidor-root DIR] [--durations CSV]

Prints one JSON line (fractions in [0, 1], plus counts). Formats:

- ``hcstvg-v1`` / ``hcstvg-v2`` / ``synthetic``: ``{video: {"st_frame", "ed_frame", "bbox": {frame: [x1,y1,x2,y2]}}}``
  keyed by the annotation's video key; frames in HC-STVG's own 1-based numbering (like ``st_frame``),
  ``ed_frame`` inclusive. Keys ``m_tIoU``, ``m_vIoU``, ``vIoU@0.3``, ``vIoU@0.5``.
- ``vidstg``: the same tube format keyed by sample id, 0-based frames (VidOR numbering); metrics per
  sentence type (``declarative``, ``interrogative``) and ``all``.
- ``st-align``: the same tube format keyed by sample id, 0-based frames; protocol ``st-align`` by
  default; only the first 2,000 samples are scored, as LLaVA-ST does.
- ``charades-sta``: ``{vid: [[start_s, end_s], ...]}``, one span per sentence of that video in the
  TimeZero JSON's order. Keys ``R@0.3``, ``R@0.5``, ``R@0.7``, ``mIoU`` (``>=`` unless overridden).
- ``mevis``: a folder ``<video>/<exp_id>/<frame>.png`` (non-zero = foreground) against
  ``meta_expressions.json`` (ANNOTATION) and ``mask_dict.json`` (beside it, or ``--mask-dict``). Keys
  ``J``, ``F``, ``J&F``. MeViS files are read here directly (they are the metric's own inputs).

Tube submissions are in the annotation's own frames, so every protocol scores an exact copy of the GT
tubes 1 (``metrics.for_frame_submission``: STVG-R1's GT-side quirks belong to answers in seconds),
except ``st-align``'s tIoU, which rounds the GT end-points to 3 decimals as LLaVA-ST does.

Under ``--protocol official`` a box keyed outside the entry's own st_frame..ed_frame still counts
on a GT frame, as in ``eval_hcvg.py`` (its S_i is every GT frame the bbox dict has), and under
``st-align`` on a sampled frame (LLaVA-ST's P is every frame its answer gave a box); both score a
reversed st_frame..ed_frame as their scripts do. ``tubedetr`` and ``stvg-r1`` read boxes inside
the entry's span only and score a reversed span 0.

A bad submission never crashes the scorer and is never skipped silently: an unknown key, a malformed
entry, box or frame key, a box keyed outside its own st_frame..ed_frame (ignored, or counted under
``official``) or outside the video (ignored), a reversed span, missing frames, or a MeViS folder that
is no video / expression of the annotation each log a warning naming the entry; the affected sample
or frame scores 0 and still counts. The JSON carries ``n_warnings``. Exit code 2 means the files
themselves could not be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from stvg.evaluation.metrics import (
    MAX_FRAME,
    TubeInput,
    TubeProtocol,
    TubeScores,
    aggregate_by_group,
    aggregate_tubes,
    for_frame_submission,
    get_protocol,
    moment_metrics,
    score_tubes,
)
from stvg.records import Sample

log = logging.getLogger("stvg.score")
TUBE_FORMATS = ("hcstvg-v1", "hcstvg-v2", "synthetic", "vidstg", "st-align")
FORMATS = (*TUBE_FORMATS, "charades-sta", "mevis")
FRAME_BASE = {"hcstvg-v1": 1, "hcstvg-v2": 1, "synthetic": 1, "vidstg": 0, "st-align": 0}
ST_ALIGN_LIMIT = 2000  # LLaVA-ST evaluates loaded_data[:2000]
_FRAME_KEY = re.compile(r"[+-]?[0-9]+")


class SubmissionError(ValueError):
    """The submission or annotation file cannot be read at all."""


class Warnings:
    """Collects and logs problems with submission entries (each names the entry)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        log.warning("%s", message)

    def __len__(self) -> int:
        return len(self.messages)


# ----------------------------------------------------------------------------------------------- tubes


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _frame_range(sample: Sample) -> tuple[int, int] | None:
    """0-based frames that exist: the video, else the annotated clip (ST-Align states no frame count)."""
    if sample.n_frames > 0:
        return 0, sample.n_frames - 1
    return sample.clip_frames


def _clamp(v: int) -> int:
    return max(-MAX_FRAME, min(v, MAX_FRAME))


def parse_tube_entry(
    key: str,
    entry: Any,
    base: int,
    sample: Sample,
    warn: Warnings,
    end_inclusive: bool = True,
    keep_off_span: bool = False,
) -> tuple[tuple[int, int] | None, dict[int, tuple[float, float, float, float]]]:
    """(inclusive 0-based span, boxes) of one tube submission entry; (None, {}) when unusable.

    A box keyed outside the video is ignored with a warning, so no key, however large, reaches the
    scorer; one keyed outside the entry's st_frame..ed_frame is ignored too unless ``keep_off_span``
    (the HC-STVG script counts it), and named in a warning either way.
    """
    if not isinstance(entry, Mapping):
        warn(f"entry {key!r}: expected an object with st_frame, ed_frame, bbox; got {type(entry).__name__}")
        return None, {}
    st, ed, bbox = entry.get("st_frame"), entry.get("ed_frame"), entry.get("bbox")
    if not (_number(st) and _number(ed) and float(st).is_integer() and float(ed).is_integer()):
        warn(f"entry {key!r}: st_frame/ed_frame must be integers, got {st!r}/{ed!r}; scored 0")
        return None, {}
    if not isinstance(bbox, Mapping):
        warn(f"entry {key!r}: bbox must be an object {{frame: [x1, y1, x2, y2]}}; scored 0")
        return None, {}
    first, last = _clamp(int(st) - base), _clamp(int(ed) - base - (0 if end_inclusive else 1))
    if last < first:
        if not keep_off_span:
            warn(f"entry {key!r}: reversed or empty span st_frame={st}, ed_frame={ed}; scored 0")
            return (first, last), {}
        warn(f"entry {key!r}: reversed or empty span st_frame={st}, ed_frame={ed}; scored as given")
    video = _frame_range(sample)
    boxes: dict[int, tuple[float, float, float, float]] = {}
    bad: list[str] = []
    off_span: list[str] = []
    off_video: list[str] = []
    for frame_key, box in bbox.items():
        if not _FRAME_KEY.fullmatch(str(frame_key)):
            bad.append(f"frame {frame_key!r} is not an integer")
            continue
        frame = int(str(frame_key)) - base
        if video is not None and not video[0] <= frame <= video[1]:
            off_video.append(repr(frame_key))
            continue
        if not first <= frame <= last:
            off_span.append(repr(frame_key))
            if not keep_off_span:
                continue
        if not (isinstance(box, list | tuple) and len(box) == 4 and all(_number(v) for v in box)):
            bad.append(f"frame {frame_key}: box {box!r} is not [x1, y1, x2, y2]")
            continue
        if box[2] < box[0] or box[3] < box[1]:
            bad.append(f"frame {frame_key}: box {box!r} has x2 < x1 or y2 < y1")
            continue
        boxes[frame] = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    if bad:
        warn(f"entry {key!r}: {len(bad)} malformed box(es) scored IoU 0, e.g. {'; '.join(bad[:3])}")
    if off_span:
        fate = "counted on GT frames (HC-STVG rule)" if keep_off_span else "ignored"
        warn(
            f"entry {key!r}: {len(off_span)} box(es) keyed outside its frames {st}..{ed} {fate}, "
            f"e.g. frame {', '.join(off_span[:3])}"
        )
    if off_video and video is not None:
        warn(
            f"entry {key!r}: {len(off_video)} box(es) keyed outside the video's frames "
            f"{video[0] + base}..{video[1] + base} ignored, e.g. frame {', '.join(off_video[:3])}"
        )
    lo, hi = (first, last) if video is None else (max(first, video[0]), min(last, video[1]))
    in_span = sum(1 for f in boxes if first <= f <= last)
    if hi >= lo and hi - lo + 1 > in_span:
        example = next(f for f in range(lo, hi + 1) if f not in boxes)  # at most len(boxes) + 1 steps
        warn(
            f"entry {key!r}: no box on {hi - lo + 1 - in_span} of the frames {st}..{ed} "
            f"(e.g. frame {example + base}); those frames score IoU 0"
        )
    if video is not None and (first < video[0] or last > video[1]):
        warn(
            f"entry {key!r}: span {st}..{ed} reaches outside the video's frames "
            f"{video[0] + base}..{video[1] + base}"
        )
    return (first, last), boxes


def tube_submission_scores(
    fmt: str, submission: Mapping[str, Any], samples: list[Sample], protocol: TubeProtocol, warn: Warnings
) -> tuple[list[Sample], TubeScores]:
    """The scored samples and their per-sample scores for a submission dict.

    The submission's frames are the annotation's own, so the protocol is applied as
    ``for_frame_submission`` describes; spans are made inclusive while parsing.
    """
    if fmt == "st-align":
        samples = samples[:ST_ALIGN_LIMIT]
    by_key = {
        (s.video_id if fmt in ("hcstvg-v1", "hcstvg-v2", "synthetic") else s.sample_id): s for s in samples
    }
    for key in submission:
        if key not in by_key:
            warn(f"entry {key!r}: not in the annotation file; ignored")
    missing = [k for k in by_key if k not in submission]
    if missing:
        warn(
            f"{len(missing)} annotated sample(s) have no entry and score 0, e.g. {', '.join(map(repr, missing[:3]))}"
        )
    keep_off_span = protocol.intersection == "boxes" or protocol.union == "boxes"
    items = []
    for key, s in by_key.items():
        if s.gt_span_frames is None:
            raise SubmissionError(
                f"annotation sample {key!r} has no GT tube; score against a file with boxes"
            )
        span, boxes = (
            (None, {})
            if key not in submission
            else parse_tube_entry(
                key, submission[key], FRAME_BASE[fmt], s, warn, protocol.end_inclusive, keep_off_span
            )
        )
        items.append(
            TubeInput(
                gt_span=s.gt_span_frames,
                gt_boxes=s.gt_boxes,
                pred_span=span,
                pred_boxes=boxes,
                n_frames=s.n_frames,
                fps=s.fps,
                gt_span_s=s.gt_span_s,
                segment=s.clip_frames,
                dataset=s.dataset,
            )
        )
    return list(by_key.values()), score_tubes(
        items, replace(for_frame_submission(protocol), end_inclusive=True)
    )


def score_tube_submission(
    fmt: str, submission: Mapping[str, Any], samples: list[Sample], protocol: TubeProtocol, warn: Warnings
) -> dict[str, Any]:
    """Tube metrics of a submission dict against loaded samples (``tube_submission_scores``, aggregated)."""
    scored, scores = tube_submission_scores(fmt, submission, samples, protocol, warn)
    out: dict[str, Any] = {"format": fmt, "protocol": protocol.name, "threshold_op": protocol.threshold_op}
    if fmt == "vidstg":
        out.update(aggregate_by_group(scores, [s.sentence_type for s in scored], protocol))
    else:
        out.update(aggregate_tubes(scores, protocol))
    return out


# ----------------------------------------------------------------------------------------------- charades


def score_charades_submission(
    submission: Mapping[str, Any], samples: list[Sample], threshold_op: str, warn: Warnings
) -> dict[str, Any]:
    """R@1 IoU=0.3/0.5/0.7 and mIoU of ``{vid: [[s, e], ...]}`` aligned with each video's sentences."""
    by_video: dict[str, list[Sample]] = {}
    for s in samples:
        by_video.setdefault(s.video_id, []).append(s)
    for key in submission:
        if key not in by_video:
            warn(f"entry {key!r}: not in the annotation file; ignored")
    preds: list[tuple[float, float] | None] = []
    gts, durations = [], []
    for vid, group in by_video.items():
        answers = submission.get(vid)
        if answers is None:
            warn(f"video {vid!r}: no entry; its {len(group)} sentence(s) score 0")
            answers = []
        elif not isinstance(answers, list):
            warn(f"video {vid!r}: expected a list of [start, end] per sentence; scored 0")
            answers = []
        elif len(answers) != len(group):
            warn(f"video {vid!r}: {len(answers)} span(s) for {len(group)} sentence(s); missing ones score 0")
        for pos, s in enumerate(group):
            i = _sentence_index(s, vid, pos)
            a = answers[i] if i < len(answers) else None
            if a is not None and not (
                isinstance(a, list | tuple) and len(a) == 2 and all(_number(v) for v in a)
            ):
                warn(f"video {vid!r} sentence {i}: {a!r} is not [start_s, end_s]; scored 0")
                a = None
            preds.append(None if a is None else (float(a[0]), float(a[1])))
            if s.gt_span_s is None:
                raise SubmissionError(f"annotation sample {s.sample_id!r} has no GT span")
            gts.append(s.gt_span_s)
            durations.append(s.duration_s if s.duration_s > 0 else math.inf)
    out: dict[str, Any] = {"format": "charades-sta", "threshold_op": threshold_op}
    out.update(moment_metrics(preds, gts, threshold_op=threshold_op, durations=durations))  # type: ignore[arg-type]
    return out


def _sentence_index(sample: Sample, vid: str, position: int) -> int:
    """Index of the sample's sentence in its video's list: the adapter's ``<vid>_<k>`` id keeps the
    position even when an invalid sentence before it was dropped; otherwise the order of loading."""
    prefix, _, k = sample.sample_id.rpartition("_")
    return int(k) if prefix == vid and k.isdigit() else position


# ----------------------------------------------------------------------------------------------- mevis


def score_mevis_submission(
    folder: Path, meta_path: Path, mask_dict_path: Path, warn: Warnings
) -> dict[str, Any]:
    """J, F and J&F of a PNG folder against MeViS ``meta_expressions.json`` + ``mask_dict.json``."""
    import cv2

    from stvg.evaluation.mevis import aggregate_jf, decode_union, expression_scores

    meta = _read_json(meta_path)
    masks = _read_json(mask_dict_path)
    videos = meta.get("videos") if isinstance(meta, Mapping) else None
    if not isinstance(videos, Mapping):
        raise SubmissionError(f"{meta_path}: expected {{'videos': {{...}}}} (MeViS meta_expressions.json)")
    known = {v for v in videos}
    if folder.is_dir():
        for extra in sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in known):
            warn(f"submission folder {extra!r}: not a video of the annotation; ignored")
        for vid in sorted(known):
            expressions = {str(e) for e in videos[vid].get("expressions", {})}
            if (folder / vid).is_dir():
                for p in sorted((folder / vid).iterdir()):
                    if p.is_dir() and p.name not in expressions:
                        warn(
                            f"submission folder {vid}/{p.name}: not an expression of the annotation; ignored"
                        )
    per_expression = []
    for vid, video in videos.items():
        frames = list(video.get("frames", []))
        for exp_id, exp in video.get("expressions", {}).items():
            anno_ids = exp.get("anno_id")
            if not anno_ids:
                raise SubmissionError(
                    f"{meta_path}: {vid}/{exp_id} has no anno_id (valid-split files carry no GT)"
                )
            tracks = []
            for a in anno_ids:
                if str(a) not in masks:
                    raise SubmissionError(f"{mask_dict_path}: anno_id {a} of {vid}/{exp_id} is missing")
                tracks.append(masks[str(a)])
            size = next((r["size"] for t in tracks for r in t if r is not None), None)
            exp_dir = folder / vid / str(exp_id)
            if not exp_dir.is_dir():
                warn(
                    f"expression {vid}/{exp_id}: no folder in the submission; predicted empty on every frame"
                )
            gt_stack, pred_stack, n_missing = [], [], 0
            for t, name in enumerate(frames):
                png = exp_dir / f"{name}.png"
                pred = cv2.imread(str(png), cv2.IMREAD_UNCHANGED) if png.is_file() else None
                if size is None and pred is not None:
                    size = list(pred.shape[:2])
                h, w = size if size is not None else (1, 1)
                gt_stack.append(decode_union([tr[t] if t < len(tr) else None for tr in tracks], h, w))
                if pred is None:
                    n_missing += exp_dir.is_dir()
                    pred_stack.append(np.zeros((h, w), dtype=bool))
                    continue
                pm = pred if pred.ndim == 2 else pred.max(axis=2)
                if pm.shape != (h, w):
                    warn(f"{png}: mask is {pm.shape[1]}x{pm.shape[0]}, the video is {w}x{h}; predicted empty")
                    pm = np.zeros((h, w), dtype=bool)
                pred_stack.append(pm > 0)
            if n_missing:
                warn(
                    f"expression {vid}/{exp_id}: {n_missing} of {len(frames)} frame PNG(s) missing; predicted empty"
                )
            per_expression.append(expression_scores(np.stack(pred_stack), np.stack(gt_stack)))
    return {"format": "mevis", **aggregate_jf(per_expression)}


# ----------------------------------------------------------------------------------------------- CLI


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SubmissionError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{path}: not valid JSON ({exc})") from exc


def score(
    fmt: str,
    submission: Path,
    annotation: Path,
    *,
    protocol: str | None = None,
    threshold_op: str | None = None,
    end_exclusive: bool = False,
    mask_dict: Path | None = None,
    **load_options: Any,
) -> tuple[dict[str, Any], Warnings]:
    """Score a submission file; returns the metrics and the warnings raised on its entries."""
    warn = Warnings()
    if fmt not in FORMATS:
        raise SubmissionError(f"unknown FORMAT {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "mevis":
        out = score_mevis_submission(
            submission, annotation, mask_dict or annotation.parent / "mask_dict.json", warn
        )
        return {**out, "n_warnings": len(warn)}, warn
    sub = _read_json(submission)
    if not isinstance(sub, Mapping):
        raise SubmissionError(f"{submission}: the submission must be a JSON object keyed by video/sample")
    from stvg.data.registry import load_samples

    try:
        samples = load_samples(
            fmt, annotation, **{k: v for k, v in load_options.items() if v is not None}
        ).samples
    except (OSError, ValueError) as exc:
        raise SubmissionError(f"{annotation}: {exc}") from exc
    if fmt == "charades-sta":
        out = score_charades_submission(sub, samples, threshold_op or ">=", warn)
    else:
        p = get_protocol(
            protocol or ("st-align" if fmt == "st-align" else "official"),
            threshold_op=threshold_op,  # type: ignore[arg-type]
            end_inclusive=False if end_exclusive else None,
        )
        out = score_tube_submission(fmt, sub, samples, p, warn)
    return {**out, "n_warnings": len(warn)}, warn


def main(argv: list[str] | None = None) -> int:
    """CLI entry (``stvg score``)."""
    ap = argparse.ArgumentParser(prog="stvg score", description="Official metrics of a benchmark submission.")
    ap.add_argument("format", choices=FORMATS)
    ap.add_argument("submission", type=Path, help="submission JSON (or, for mevis, the PNG folder)")
    ap.add_argument("annotation", type=Path, help="official annotation file (mevis: meta_expressions.json)")
    ap.add_argument("--protocol", choices=("official", "tubedetr", "stvg-r1", "st-align"), default=None)
    ap.add_argument("--threshold-op", choices=(">", ">="), default=None, help="vIoU@R / R@m comparison")
    ap.add_argument("--end-exclusive", action="store_true", help="ed_frame is one past the last frame")
    ap.add_argument(
        "--mask-dict", type=Path, default=None, help="mevis: mask_dict.json (default: beside ANNOTATION)"
    )
    ap.add_argument("--vidor-root", type=Path, default=None, help="vidstg: folder of the VidOR box files")
    ap.add_argument(
        "--durations", type=Path, default=None, help="charades-sta: Charades_v1_test.csv (GT end clip)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        out, _ = score(
            args.format,
            args.submission,
            args.annotation,
            protocol=args.protocol,
            threshold_op=args.threshold_op,
            end_exclusive=args.end_exclusive,
            mask_dict=args.mask_dict,
            vidor_root=args.vidor_root,
            durations=args.durations,
        )
    except SubmissionError as exc:
        sys.stderr.write(f"stvg score: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")  # the one result line (a CLI, not a log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
