"""Official STVG and moment-retrieval metrics in numpy: one vectorised scorer behind every protocol.

Tube metrics (HC-STVG, VidSTG, ST-Align) are computed on padded per-sample frame windows
(``TubeBatch``): one row per sample, one column per frame from ``origin`` on, so a whole benchmark is
scored with a few array operations. ``score_tube`` (one sample) packs a batch of one, so the label
stage's prompting ceiling and the evaluate stage cannot drift apart. Box IoU is float64 throughout,
so a score exactly at a threshold is decided as the official float64 code decides it.

Protocols (REFERENCE Part 3, section 9, and section 7 "exact official behaviour"):

- ``official`` (default) — HC-STVG challenge ``eval_hcvg.py``: every frame, inclusive ends;
  S_i = the GT frames that have a predicted box (a hole inside the predicted span is not in S_i, a
  submitted box outside it is), |S_u| = max(ends) - min(starts) + 1 from the spans, even a reversed
  one; tIoU = |S_i| / |S_u|, vIoU = sum of box IoU over S_i / |S_u|; vIoU@R counts ``>``.
- ``tubedetr`` — ``hcstvg_eval.py`` / ``vidstg_eval.py``: frames sampled at 5 fps (kept when
  floor(f * 5 / fps) increases), uniformly capped at 200; numerator and denominator count sampled
  frames only; tIoU on raw frames; ``>``. HC-STVG-format videos sample ``range(0, n_frames - 1)``
  in the annotation's own numbering (TubeDETR reads the 1-based ``st_frame`` as a frame index), so
  the grid is that of frames t - 1 here; VidSTG samples its ``used_segment`` [first, last),
  other data [0, n_frames).
- ``stvg-r1`` — the official STVG-R1 ``evaluate.py``: GT and answered frames are int(t * fps) at
  both ends, not clipped to the video (frames past the end have no mask, score 0 and still count
  in |S_u|); an overlap of one frame or less scores vIoU 0; the GT box of frame f is read one frame
  late (the 1-based ``st_frame`` slip: the first GT frame has no box); tIoU in seconds; ``>=``;
  boxes from masks end on their last pixel (``rle_to_bbox``; ``mask_box``). A tube submitted in
  the annotation's frames is scored with ``for_frame_submission`` (its tIoU compares the frame
  intervals, so an exact copy of the GT tube scores 1). The code's box fallbacks live in
  ``evaluation.fallbacks``, not here.
- ``st-align`` — LLaVA-ST ``eval_stvg``: 100 frames sampled uniformly over the segment,
  vIoU = sum of IoU over G ∩ P / |G ∪ P| (G / P = the sampled frames with a GT / predicted box;
  a submission's boxes count wherever it puts them, an answer's on its span); tIoU on the segment
  normalised to [0, 1], the GT end-points rounded to 3 decimals first as LLaVA-ST does; ``>=``.

Every failure scores tIoU = vIoU = 0 and is still counted: a missing prediction, a reversed answer
(in seconds; a reversed frame span too, except under ``official`` and ``st-align`` whose scripts
score a submitted one as given: ``reversed_fails``), a zero-length union (seconds). Departures, kept on purpose: where the official code raises on a
zero-length union (``evaluate.py``, LLaVA-ST) the sample is dropped from its means; here it counts 0.
An answer in seconds becomes frames floor(s * fps) .. ceil(e * fps) - 1 (the frames the interval
overlaps; ``seconds_to_span``), clipped to the video; REFERENCE 9 writes floor for both ends, which
makes a span ending on a frame boundary one frame too long, so only ``stvg-r1`` keeps the code's
int(t * fps) (``time_to_frame="int"``). A 1e-6 frame tolerance makes frame -> seconds -> frame
round-trip exactly (plain ``int(t * fps)`` maps 3 / 29.97 s to frame 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain, compress
from typing import Literal

import numpy as np

from stvg.geometry import temporal_iou
from stvg.records import Sample

ThresholdOp = Literal[">", ">="]
FrameSampling = Literal["all", "tubedetr", "uniform100"]
TiouMode = Literal["frames", "seconds", "continuous"]
UnionMode = Literal["span", "boxes"]
IntersectionMode = Literal["span", "boxes"]
TimeToFrame = Literal["interval", "int"]
MaskBox = Literal["exclusive", "last_pixel"]

FAILURES = ("missing", "reversed", "empty_union")  # codes 1, 2, 3 in TubeScores.failure; 0 = scored
_FAILURE_CODE = {name: i + 1 for i, name in enumerate(FAILURES)}
_FRAME_EPS = 1e-6  # frames; see the module docstring
_CHUNK_ELEMENTS = 1 << 16  # frames per vectorised chunk: keeps each (rows, L) plane in L2 cache
_PACK_CHUNK = 1024  # samples per packed batch in score_tubes: bounds the padded (4, n, L) box planes
HCSTVG_LIKE = ("hcstvg-v1", "hcstvg-v2", "synthetic")  # 1-based st_frame; TubeDETR samples [0, n - 1)
MAX_FRAME = 10**15  # |frame| clamp of unclipped answers: int64-safe, far outside any video


@dataclass(frozen=True)
class TubeProtocol:
    """How a predicted tube is compared with the GT tube (one preset per published protocol)."""

    name: str = "official"
    frames: FrameSampling = "all"
    threshold_op: ThresholdOp = ">"
    end_inclusive: bool = True  # a submitted end frame is the last frame (False: one past it)
    min_overlap_frames: int = 1  # vIoU is 0 below this many overlapping frames (stvg-r1: 2)
    tiou: TiouMode = "frames"
    intersection: IntersectionMode = "span"  # S_i: GT frames in the predicted span | with a predicted box
    reversed_fails: bool = True  # a reversed frame span scores 0 (official, st-align: scored as given)
    gt_frames_from_times: bool = False  # GT frames = int(GT seconds * fps) (stvg-r1)
    gt_box_offset: int = 0  # GT box of frame f is the box of frame f - offset (stvg-r1: 1)
    time_to_frame: TimeToFrame = "interval"  # seconds -> frames (stvg-r1: "int", int(t * fps), unclipped)
    annotation_grid: bool = False  # tubedetr: sample HC-STVG-format videos in the 1-based numbering
    gt_tiou_decimals: int | None = None  # st-align: normalised GT end-points rounded (LLaVA-ST: 3)
    mask_box: MaskBox = "exclusive"  # boxes of masks: x2 = last column + 1 | the last column (stvg-r1)
    union: UnionMode = "span"
    sample_fps: float = 5.0  # tubedetr sampling rate
    max_sampled_frames: int = 200  # tubedetr cap
    uniform_frames: int = 100  # st-align frame count
    iou_thresholds: tuple[float, ...] = (0.3, 0.5)
    tiou_thresholds: tuple[float, ...] = ()


PROTOCOLS: dict[str, TubeProtocol] = {
    "official": TubeProtocol(intersection="boxes", reversed_fails=False),
    "tubedetr": TubeProtocol(name="tubedetr", frames="tubedetr", annotation_grid=True),
    "stvg-r1": TubeProtocol(
        name="stvg-r1",
        threshold_op=">=",
        min_overlap_frames=2,
        tiou="seconds",
        gt_frames_from_times=True,
        gt_box_offset=1,
        time_to_frame="int",
        mask_box="last_pixel",
    ),
    "st-align": TubeProtocol(
        name="st-align",
        frames="uniform100",
        threshold_op=">=",
        tiou="continuous",
        union="boxes",
        reversed_fails=False,
        gt_tiou_decimals=3,
        tiou_thresholds=(0.5,),
    ),
}


def get_protocol(
    name: str = "official",
    *,
    threshold_op: ThresholdOp | None = None,
    end_inclusive: bool | None = None,
    iou_thresholds: Sequence[float] | None = None,
) -> TubeProtocol:
    """A protocol preset by name, with optional overrides of its threshold operator, end convention and R."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown tube protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    p = PROTOCOLS[name]
    if threshold_op is not None:
        if threshold_op not in (">", ">="):
            raise ValueError(f"threshold_op must be '>' or '>=', got {threshold_op!r}")
        p = replace(p, threshold_op=threshold_op)
    if end_inclusive is not None:
        p = replace(p, end_inclusive=end_inclusive)
    if iou_thresholds is not None:
        p = replace(p, iou_thresholds=tuple(float(t) for t in iou_thresholds))
    return p


def for_frame_submission(protocol: TubeProtocol) -> TubeProtocol:
    """The protocol as applied to a tube submitted in the annotation's own frame numbering.

    STVG-R1's GT-side quirks (GT frames from int(t * fps), the GT box read one frame late) come from
    mapping an answer in seconds onto 0-based decoded frames against the 1-based ``st_frame``. A tube
    keyed by the annotation's frames never takes that path, so its GT tube is the annotation's own and
    a submission equal to it scores 1; the prediction-side rules (threshold operator, the two-frame
    minimum overlap, tIoU as intervals) are kept.
    """
    return replace(protocol, gt_frames_from_times=False, gt_box_offset=0)


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class DenseBoxes:
    """A box track as an array: row i is frame ``first_frame + i``; NaN rows are frames without a box."""

    first_frame: int
    boxes: np.ndarray  # (T, 4) xyxy, pixels


Boxes = Mapping[int, Sequence[float]] | DenseBoxes


@dataclass(frozen=True)
class TubeInput:
    """One sample to score: GT and predicted tubes on 0-based native frames, inclusive spans."""

    gt_span: tuple[int, int]
    gt_boxes: Boxes
    pred_span: tuple[int, int] | None  # None = missing or unparsable prediction
    pred_boxes: Boxes
    n_frames: int
    fps: float
    gt_span_s: tuple[float, float] | None = None  # seconds (tIoU "seconds" and the empty-union check)
    pred_span_s: tuple[float, float] | None = None
    segment: tuple[int, int] | None = (
        None  # inclusive frames sampled from (VidSTG used_segment, ST-Align split)
    )
    dataset: str = ""


def seconds_to_frame(t: float, fps: float, n_frames: int) -> int:
    """Frame holding time ``t``: floor(t * fps) with a 1e-6 frame tolerance, clipped to the video."""
    f = math.floor(t * fps + _FRAME_EPS)
    return int(min(max(f, 0), max(n_frames - 1, 0)))


def seconds_to_span(
    start_s: float, end_s: float, fps: float, n_frames: int, rule: TimeToFrame = "interval"
) -> tuple[int, int]:
    """Inclusive frames of a span in seconds.

    ``interval``: the frames the interval overlaps, floor(s * fps) .. ceil(e * fps) - 1 (at least the
    start frame), clipped to the video; it inverts both HC-STVG's times (an ``ed_time`` on a frame
    boundary ends the previous frame) and a GT tube written as [first / fps, (last + 1) / fps].
    ``int``: the official STVG-R1 ``int(t * fps)`` for both ends, neither clipped to the video nor
    reversed-checked (one frame longer than ``interval`` when ``e * fps`` is a whole number).

    >>> seconds_to_span(18.0, 25.0, 30.0, 600), seconds_to_span(18.0, 25.0, 30.0, 600, "int")
    ((540, 599), (540, 750))
    """
    if rule == "int":
        return _int_frame(start_s, fps), _int_frame(end_s, fps)
    first = seconds_to_frame(start_s, fps, n_frames)
    last = math.ceil(end_s * fps - _FRAME_EPS) - 1
    return first, int(min(max(last, first), max(n_frames - 1, 0)))


def _int_frame(t: float, fps: float) -> int:
    """``int(t * fps)`` (truncation, as the official code), kept within +-MAX_FRAME."""
    return max(-MAX_FRAME, min(int(t * fps), MAX_FRAME))


def tube_input(
    sample: Sample,
    pred_span_s: tuple[float, float] | None,
    pred_boxes: Boxes,
    protocol: TubeProtocol = PROTOCOLS["official"],
) -> TubeInput:
    """Convert a policy answer (seconds + boxes on native frames) for ``sample`` into a ``TubeInput``.

    The answer's tube is its boxes on the answered frames: a box outside them is not part of it (a
    submission built from the answer would not carry it), which matters where a protocol counts
    every GT frame that has a predicted box (``official``).
    """
    if sample.gt_span_frames is None and sample.gt_span_s is None:
        raise ValueError(f"sample {sample.sample_id}: no GT span; it cannot be scored as a tube")
    rule = protocol.time_to_frame
    if sample.gt_span_frames is not None and not (
        protocol.gt_frames_from_times and sample.gt_span_s is not None
    ):
        gt_span = (int(sample.gt_span_frames[0]), int(sample.gt_span_frames[1]))
    else:
        gs, ge = sample.gt_span_s  # type: ignore[misc]
        gt_span = seconds_to_span(gs, ge, sample.fps, sample.n_frames, rule)
    pred_span = None
    if pred_span_s is not None and all(math.isfinite(v) for v in pred_span_s):
        ps, pe = pred_span_s
        # a reversed answer is caught from the seconds in pack_tubes (clipping could hide it here)
        pred_span = seconds_to_span(ps, pe, sample.fps, sample.n_frames, rule) if pe >= ps else (0, 0)
    else:
        pred_span_s = None
    return TubeInput(
        gt_span=gt_span,
        gt_boxes=sample.gt_boxes,
        pred_span=pred_span,
        pred_boxes=_within(pred_boxes, pred_span),
        n_frames=sample.n_frames,
        fps=sample.fps,
        gt_span_s=sample.gt_span_s,
        pred_span_s=pred_span_s,
        segment=sample.clip_frames,
        dataset=sample.dataset,
    )


def _within(boxes: Boxes, span: tuple[int, int] | None) -> Boxes:
    """The boxes of ``boxes`` on the frames of ``span`` (none without a span)."""
    if span is None:
        return {}
    lo, hi = span
    if _is_dense(boxes):
        first = int(boxes.first_frame)  # type: ignore[union-attr]
        arr = np.asarray(boxes.boxes, dtype=np.float64).reshape(-1, 4)  # type: ignore[union-attr]
        a, b = max(lo - first, 0), max(min(hi - first + 1, len(arr)), 0)
        return DenseBoxes(first + a, arr[a:b]) if a < b else {}
    return {f: box for f, box in boxes.items() if lo <= f <= hi}  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------- frame sampling


def tubedetr_frame_ids(
    start: int, end: int, video_fps: float, sample_fps: float = 5.0, max_len: int = 200
) -> list[int]:
    """TubeDETR's evaluated frames in [start, end): kept when floor(f * r) increases, r = sample_fps / fps.

    ``start`` is always kept (also for an empty range, as TubeDETR starts its list with it). More
    than ``max_len`` frames are subsampled uniformly (``ids[j * n // max_len]``).
    """
    rate = min(sample_fps / video_fps, 1.0) if video_fps > 0 else 1.0
    if end <= start:
        return [start]
    f = np.arange(start, end)
    q = np.floor(f * rate).astype(np.int64)
    keep = np.ones(len(f), dtype=bool)
    keep[1:] = q[1:] > q[:-1]
    ids = f[keep]
    if len(ids) > max_len:
        ids = ids[(np.arange(max_len) * len(ids)) // max_len]
    return ids.tolist()


def uniform_frame_ids(first: int, last: int, n: int = 100) -> list[int]:
    """ST-Align's evaluated frames: first + round(i * (last - first) / (n - 1)), i = 0..n-1, deduplicated."""
    if last < first:
        return []
    ids = first + np.round(np.arange(n) * (last - first) / max(n - 1, 1)).astype(np.int64)
    return np.unique(ids).tolist()


def evaluated_frame_ids(item: TubeInput, protocol: TubeProtocol) -> list[int] | None:
    """Frames a protocol looks at for this sample (0-based, as every frame here); None = every frame."""
    if protocol.frames == "all":
        return None
    if protocol.frames == "tubedetr":
        if item.segment is not None:  # range(begin_fid, end_fid): the segment's last frame is never sampled
            return tubedetr_frame_ids(
                item.segment[0], item.segment[1], item.fps, protocol.sample_fps, protocol.max_sampled_frames
            )
        hcstvg = item.dataset in HCSTVG_LIKE
        ids = tubedetr_frame_ids(
            0,
            item.n_frames - 1 if hcstvg else item.n_frames,
            item.fps,
            protocol.sample_fps,
            protocol.max_sampled_frames,
        )
        shift = 1 if hcstvg and protocol.annotation_grid else 0  # annotation frame t is frame t - 1 here
        return [i - shift for i in ids]
    first, last = item.segment if item.segment is not None else (0, item.n_frames - 1)
    return uniform_frame_ids(first, last, protocol.uniform_frames)


# ----------------------------------------------------------------------------------------------- batch


@dataclass(frozen=True)
class TubeBatch:
    """Padded per-sample frame windows: column j of row n is frame ``origin[n] + j``.

    Boxes are stored coordinate-major, (4, N, L): each coordinate plane is contiguous, which makes the
    IoU kernel about 2.5x faster than (N, L, 4). For span protocols the window is the GT span (only
    GT frames can add to the numerator), ``pack_tubes`` fills boxes on the frames the metric reads
    and ``union_count`` holds the denominator, counted at packing; for box-presence protocols
    (ST-Align) the window covers the GT boxes and the predicted boxes, within the video, and the
    denominator is counted here from the boxes.
    """

    origin: np.ndarray  # (N,) int64, first frame of each window
    gt_span: np.ndarray  # (N, 2) int64, inclusive
    pred_span: np.ndarray  # (N, 2) int64, inclusive; rows of failed samples are ignored
    gt_boxes: np.ndarray  # (4, N, L) float64 x1, y1, x2, y2 planes, NaN = no box
    pred_boxes: np.ndarray  # (4, N, L) float64, NaN = no box
    counted: np.ndarray | None = None  # (N, L) bool, frames the protocol evaluates; None = all
    union_count: np.ndarray | None = None  # (N,) denominators |S_u|; None = count boxes (G ∪ P)
    failure: np.ndarray | None = None  # (N,) int8 codes, None = all scored
    tiou_override: np.ndarray | None = None  # (N,) tIoU computed in seconds / continuous form
    min_overlap: np.ndarray | None = None  # (N,) bool, False where the overlap is too short to score

    def __len__(self) -> int:
        return len(self.origin)


@dataclass(frozen=True)
class TubeScore:
    """The scores of one sample; ``failure`` names why it scored 0 (None when it was scored)."""

    tiou: float
    viou: float
    failure: str | None = None


@dataclass(frozen=True)
class TubeScores:
    """Per-sample scores of a batch."""

    tiou: np.ndarray  # (N,)
    viou: np.ndarray  # (N,)
    failure: np.ndarray  # (N,) int8, 0 = scored, else 1 + FAILURES index

    def __len__(self) -> int:
        return len(self.tiou)

    def __getitem__(self, i: int) -> TubeScore:
        code = int(self.failure[i])
        return TubeScore(float(self.tiou[i]), float(self.viou[i]), FAILURES[code - 1] if code else None)


def _is_dense(boxes: object) -> bool:
    """DenseBoxes, or any array-backed tube with the same fields (``stvg.data.tubes.BoxTube``)."""
    return isinstance(boxes, DenseBoxes) or (hasattr(boxes, "first_frame") and hasattr(boxes, "boxes"))


def _span_or_nan(spans: Sequence[tuple[float, float] | None]) -> np.ndarray:
    return np.array([(np.nan, np.nan) if s is None else s for s in spans], dtype=np.float64).reshape(-1, 2)


def _check_preds(items: Sequence[TubeInput], protocol: TubeProtocol) -> tuple[np.ndarray, np.ndarray]:
    """Failure codes (N,) and inclusive predicted spans (N, 2) of a batch; failed rows get (0, -1)."""
    n = len(items)
    has = np.fromiter((it.pred_span is not None for it in items), dtype=bool, count=n)
    span = np.array([it.pred_span or (0, -1) for it in items], dtype=np.int64).reshape(n, 2)
    if not protocol.end_inclusive:
        span[:, 1] -= 1
    pr_s = _span_or_nan([it.pred_span_s for it in items])
    gt_s = _span_or_nan([it.gt_span_s for it in items])
    failure = np.where(has, 0, _FAILURE_CODE["missing"]).astype(np.int8)
    rev = has & (pr_s[:, 1] < pr_s[:, 0])  # an answer in seconds; NaN compares False
    if protocol.reversed_fails:
        rev |= has & (span[:, 1] < span[:, 0])
    failure[rev] = _FAILURE_CODE["reversed"]
    empty = has & ~rev & (np.fmax(gt_s[:, 1], pr_s[:, 1]) - np.fmin(gt_s[:, 0], pr_s[:, 0]) <= 0)
    empty &= ~np.isnan(gt_s[:, 0]) & ~np.isnan(pr_s[:, 0])
    failure[empty] = _FAILURE_CODE["empty_union"]
    span[failure != 0] = (0, -1)
    return failure, span


def _frame_bounds(items: Sequence[TubeInput]) -> np.ndarray:
    """(N, 2) frames known to exist: the video, else the clip segment (ST-Align states no frame
    count), else the GT span; they bound every window, so no box key can make one huge."""
    return np.array(
        [
            (0, it.n_frames - 1)
            if it.n_frames > 0
            else (it.segment if it.segment is not None else it.gt_span)
            for it in items
        ],
        dtype=np.int64,
    ).reshape(len(items), 2)


def _read_window(
    items: Sequence[TubeInput],
    protocol: TubeProtocol,
    gt_span: np.ndarray,
    pred_span: np.ndarray,
    failure: np.ndarray,
) -> np.ndarray:
    """(N, 2) inclusive frames whose predicted box the metric can read (empty rows: lo > hi).

    Span protocols read boxes only on S_i = GT ∩ predicted span (shorter than ``min_overlap_frames``:
    none); ``intersection="boxes"`` (HC-STVG) reads a predicted box on any GT frame; box-presence
    protocols (ST-Align) count every predicted box within the frames that exist (LLaVA-ST's P is the
    frames its answer gave a box, whatever its time span). A box anywhere else cannot change the
    score. An answer's boxes are its boxes on its span (``tube_input``), so for answers every
    protocol reads within the span.
    """
    if protocol.union == "boxes":
        bounds = _frame_bounds(items)
        lo, hi = bounds[:, 0].copy(), bounds[:, 1].copy()
    elif protocol.intersection == "boxes":
        lo, hi = gt_span[:, 0].copy(), gt_span[:, 1].copy()
    else:
        lo = np.maximum(gt_span[:, 0], pred_span[:, 0])
        hi = np.minimum(gt_span[:, 1], pred_span[:, 1])
        hi = np.where(hi - lo + 1 < protocol.min_overlap_frames, lo - 1, hi)
    hi = np.where(failure != 0, lo - 1, hi)
    return np.stack([lo, hi], axis=1)


def read_frames(item: TubeInput, protocol: TubeProtocol = PROTOCOLS["official"]) -> np.ndarray:
    """Sorted frames of the predicted span on which ``protocol`` reads this sample's predicted box
    (none if it fails).

    A box, or a box fallback, on any other frame of the answer cannot change the sample's scores; the
    evaluate stage builds the answered tube, and applies and counts its ID-repair fallbacks, on these
    frames only. Frames past the end of the video are included (the metric reads them; no box exists).
    """
    failure, pred_span = _check_preds([item], protocol)
    gt_span = np.asarray([item.gt_span], dtype=np.int64)
    lo, hi = _read_window([item], protocol, gt_span, pred_span, failure)[0]
    lo, hi = max(lo, pred_span[0, 0]), min(hi, pred_span[0, 1])
    frames = np.arange(lo, hi + 1, dtype=np.int64)
    ids = evaluated_frame_ids(item, protocol)
    return frames if ids is None else np.intersect1d(frames, np.asarray(ids, dtype=np.int64))


def _gather(
    tubes: Sequence[Boxes], lo: np.ndarray, hi: np.ndarray, shift: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, frame, (4, K) float64 boxes) of the boxes of ``tubes[i]`` whose frame + ``shift`` lies
    in lo[i]..hi[i].

    Dict tubes are read with a few C-level passes over all of them at once (keys, then only the
    boxes in range), never a Python statement per frame: reading the Python floats is nearly the
    whole cost of packing. Array-backed tubes are sliced.
    """
    active = np.flatnonzero(lo <= hi).tolist()
    map_rows = [i for i in active if type(tubes[i]) is dict]  # the common case, no attribute lookups
    dense_rows: list[int] = []
    if len(map_rows) < len(active):
        others = [i for i in active if type(tubes[i]) is not dict]
        dense_rows = [i for i in others if _is_dense(tubes[i])]
        map_rows += [i for i in others if not _is_dense(tubes[i])]  # any other Mapping
    rows_d: list[np.ndarray] = []
    frames_d: list[np.ndarray] = []
    boxes_d: list[np.ndarray] = []
    if dense_rows:  # one concatenation, whatever the number of tubes
        idx = np.asarray(dense_rows, dtype=np.int64)
        arrs = [np.asarray(tubes[i].boxes, dtype=np.float64).reshape(-1, 4) for i in dense_rows]  # type: ignore[union-attr]
        lens = np.fromiter(map(len, arrs), dtype=np.int64, count=len(arrs))
        firsts = np.fromiter((tubes[i].first_frame for i in dense_rows), dtype=np.int64, count=len(arrs))  # type: ignore[union-attr]
        starts = np.cumsum(lens) - lens
        frames = np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(firsts + shift - starts, lens)
        keep = (frames >= np.repeat(lo[idx], lens)) & (frames <= np.repeat(hi[idx], lens))
        rows_d.append(np.repeat(idx, lens)[keep])
        frames_d.append(frames[keep])
        boxes_d.append(np.concatenate(arrs)[keep].T.astype(np.float64))
    maps = [tubes[i] for i in map_rows]
    if maps:
        idx = np.asarray(map_rows, dtype=np.int64)
        lens = np.fromiter(map(len, maps), dtype=np.int64, count=len(maps))
        keys = np.fromiter(chain.from_iterable(maps), dtype=np.int64, count=int(lens.sum()))
        keys += shift
        keep = (keys >= np.repeat(lo[idx], lens)) & (keys <= np.repeat(hi[idx], lens))
        values = chain.from_iterable(map(_values, maps))
        count = int(np.count_nonzero(keep))
        if count < len(keep):
            values = compress(values, keep.tolist())
        floats = chain.from_iterable(values)
        try:
            flat = np.fromiter(floats, dtype=np.float64, count=4 * count)
            extra = next(floats, None) is not None
        except (TypeError, ValueError) as exc:
            raise ValueError("every box of a tube must be 4 numbers [x1, y1, x2, y2]") from exc
        if extra:
            raise ValueError("every box of a tube must be 4 numbers [x1, y1, x2, y2]")
        rows = np.repeat(idx, lens)
        rows_d.append(rows if count == len(keep) else rows[keep])
        frames_d.append(keys if count == len(keep) else keys[keep])
        boxes_d.append(flat.reshape(count, 4).T)
    if not rows_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((4, 0), np.float64)
    return np.concatenate(rows_d), np.concatenate(frames_d), np.concatenate(boxes_d, axis=1)


def _values(tube: Mapping[int, Sequence[float]]) -> Iterable[Sequence[float]]:
    return tube.values()


def _scatter(
    planes: np.ndarray, origin: np.ndarray, rows: np.ndarray, frames: np.ndarray, boxes: np.ndarray
) -> None:
    """Write gathered (4, K) boxes into (4, N, L) planes; frames outside a row's window are dropped."""
    length = planes.shape[2]
    col = frames - origin[rows]
    if col.size and (col.min() < 0 or col.max() >= length):  # never for pack_tubes' own windows
        ok = (col >= 0) & (col < length)
        rows, col, boxes = rows[ok], col[ok], boxes[:, ok]
    flat = rows * length + col
    for c in range(4):
        planes[c].reshape(-1)[flat] = boxes[c]


def _counted_frames(
    items: Sequence[TubeInput],
    protocol: TubeProtocol,
    origin: np.ndarray,
    length: int,
    union_lo: np.ndarray,
    union_hi: np.ndarray,
    need_union: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) evaluated-frame mask, and the evaluated frames in each union span (sampled protocols)."""
    n = len(items)
    counted = np.zeros((n, length), dtype=bool)
    union = np.zeros(n)
    cache: dict[tuple[object, ...], np.ndarray] = {}  # many samples share a video's frame grid
    rows, cols = [], []
    for i, it in enumerate(items):
        key = (it.segment, it.n_frames, it.fps, it.dataset in HCSTVG_LIKE)
        ids = cache.get(key)
        if ids is None:
            ids = cache[key] = np.asarray(evaluated_frame_ids(it, protocol), dtype=np.int64)
        a, b = np.searchsorted(ids, (origin[i], origin[i] + length))
        rows.append(np.full(b - a, i, dtype=np.int64))
        cols.append(ids[a:b] - origin[i])
        if need_union:
            u0, u1 = np.searchsorted(ids, (union_lo[i], union_hi[i] + 1))
            union[i] = u1 - u0
    if rows:
        counted[np.concatenate(rows), np.concatenate(cols)] = True
    return counted, union


def pack_tubes(items: Sequence[TubeInput], protocol: TubeProtocol = PROTOCOLS["official"]) -> TubeBatch:
    """Pack samples into one padded ``TubeBatch``.

    Only boxes the metric can read are packed (``_read_window``); a box keyed far outside the video
    costs nothing. The per-sample Python work is a handful of attribute reads; boxes are moved with
    bulk numpy operations (``_gather``).
    """
    n = len(items)
    shift = protocol.gt_box_offset
    gt_span = np.array([it.gt_span for it in items], dtype=np.int64).reshape(n, 2)
    failure, pred_span = _check_preds(items, protocol)
    read = _read_window(items, protocol, gt_span, pred_span, failure)
    by_boxes = protocol.union == "boxes"
    if by_boxes:  # G counts GT boxes wherever they are (within the frames that exist)
        bounds = _frame_bounds(items)
        g_rows, g_frames, g_boxes = _gather([it.gt_boxes for it in items], bounds[:, 0], bounds[:, 1], shift)
        some = read[:, 0] <= read[:, 1]
        g_lo = np.where(some, np.minimum(gt_span[:, 0], read[:, 0]), gt_span[:, 0])
        g_hi = np.where(some, np.maximum(gt_span[:, 1], read[:, 1]), gt_span[:, 1])
        if len(g_rows):
            np.minimum.at(g_lo, g_rows, g_frames)
            np.maximum.at(g_hi, g_rows, g_frames)
        origin, hi = g_lo, g_hi
    else:  # the window is the GT span: only its frames can add to the numerator
        g_rows, g_frames, g_boxes = _gather([it.gt_boxes for it in items], read[:, 0], read[:, 1], shift)
        origin, hi = gt_span[:, 0].copy(), gt_span[:, 1]
    p_rows, p_frames, p_boxes = _gather([it.pred_boxes for it in items], read[:, 0], read[:, 1])
    length = int(max((hi - origin + 1).max(initial=1), 1))
    gt_boxes = np.full((4, n, length), np.nan, dtype=np.float64)
    pred_boxes = np.full((4, n, length), np.nan, dtype=np.float64)
    _scatter(gt_boxes, origin, g_rows, g_frames, g_boxes)
    _scatter(pred_boxes, origin, p_rows, p_frames, p_boxes)

    failed = failure != 0
    u_lo = np.where(failed, gt_span[:, 0], np.minimum(gt_span[:, 0], pred_span[:, 0]))
    u_hi = np.where(failed, gt_span[:, 1], np.maximum(gt_span[:, 1], pred_span[:, 1]))
    counted, union_count = None, None  # box-presence protocols count G ∪ P in the kernel
    if protocol.frames != "all":
        counted, union = _counted_frames(items, protocol, origin, length, u_lo, u_hi, not by_boxes)
        union_count = None if by_boxes else union
    elif not by_boxes:
        union_count = (u_hi - u_lo + 1).astype(np.float64)
    overlap = np.minimum(gt_span[:, 1], pred_span[:, 1]) - np.maximum(gt_span[:, 0], pred_span[:, 0]) + 1
    min_overlap = overlap >= protocol.min_overlap_frames if protocol.min_overlap_frames > 1 else None
    tiou_override = (
        _span_tious(items, protocol, gt_span, pred_span, failure) if protocol.tiou != "frames" else None
    )
    return TubeBatch(
        origin,
        gt_span,
        pred_span,
        gt_boxes,
        pred_boxes,
        counted,
        union_count,
        failure,
        tiou_override,
        min_overlap,
    )


def _span_tious(
    items: Sequence[TubeInput],
    protocol: TubeProtocol,
    gt_span: np.ndarray,
    pred_span: np.ndarray,
    failure: np.ndarray,
) -> np.ndarray:
    """tIoU in the protocol's continuous form (seconds, or frame end-points), vectorised; 0 for failures.

    ``seconds``: an answer in seconds is compared with the GT times (STVG-R1). A tube given in frames
    has no times of its own: inclusive frames a..b cover [a, b + 1) frame periods, on both sides, so
    a submission equal to the GT tube scores 1 (dividing by fps would not change the ratio).
    """
    if protocol.tiou == "continuous":
        out = _normalised_tiou(items, protocol, gt_span, pred_span)
    else:
        pr_s = _span_or_nan([it.pred_span_s for it in items])
        gt_s = _span_or_nan([it.gt_span_s for it in items])
        fps = np.array([it.fps for it in items], dtype=np.float64)
        gt_f = np.stack([gt_span[:, 0], gt_span[:, 1] + 1], axis=1).astype(np.float64)
        answered = ~np.isnan(pr_s[:, 0])
        safe_fps = np.where(fps > 0, fps, 1.0)[:, None]
        gt_ref = np.where(np.isnan(gt_s), gt_f / safe_fps, gt_s)  # GT times, else its frames in seconds
        pr = np.where(answered[:, None], pr_s, np.stack([pred_span[:, 0], pred_span[:, 1] + 1], axis=1))
        gt = np.where(answered[:, None], gt_ref, gt_f)
        out = temporal_iou(pr[:, 0], pr[:, 1], gt[:, 0], gt[:, 1])
    out = np.asarray(out, dtype=np.float64).copy()
    out[failure != 0] = 0.0
    return out


def _normalised_tiou(
    items: Sequence[TubeInput], protocol: TubeProtocol, gt_span: np.ndarray, pred_span: np.ndarray
) -> np.ndarray:
    """tIoU of frame end-points on the segment normalised to [0, 1] (LLaVA-ST ``eval_stvg``).

    The GT end-points are rounded to ``gt_tiou_decimals`` with Python's ``round`` (as LLaVA-ST does;
    numpy's rounding differs on values such as 0.0005). A one-frame segment scores 0 (LLaVA-ST
    divides by zero there).
    """
    seg = np.array(
        [it.segment if it.segment is not None else (0, it.n_frames - 1) for it in items], dtype=np.float64
    ).reshape(-1, 2)
    length = seg[:, 1] - seg[:, 0]
    scale = np.where(length > 0, length, 1.0)[:, None]
    gt = (gt_span - seg[:, :1]) / scale
    if protocol.gt_tiou_decimals is not None:
        digits = protocol.gt_tiou_decimals
        gt = np.array([round(float(v), digits) for v in gt.ravel()], dtype=np.float64).reshape(-1, 2)
    pr = (pred_span - seg[:, :1]) / scale
    return np.where(length > 0, temporal_iou(pr[:, 0], pr[:, 1], gt[:, 0], gt[:, 1]), 0.0)


def plane_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Box IoU of coordinate-major box planes (4, ...) -> (...); 0 where a box is missing (NaN).

    The same definition and the same float64 arithmetic as ``geometry.box_iou`` (no +1, degenerate
    boxes have area 0), written in place because it is the hot loop of every benchmark score. Float32
    would flip scores that sit exactly on a threshold (a box IoU of 0.3 is 0.30000001 there).
    """
    iw = np.minimum(a[2], b[2])
    iw -= np.maximum(a[0], b[0])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(a[3], b[3])
    ih -= np.maximum(a[1], b[1])
    np.maximum(ih, 0, out=ih)
    iw *= ih  # intersection
    area_a = a[2] - a[0]
    np.maximum(area_a, 0, out=area_a)
    h = a[3] - a[1]
    np.maximum(h, 0, out=h)
    area_a *= h
    area_b = b[2] - b[0]
    np.maximum(area_b, 0, out=area_b)
    h = b[3] - b[1]
    np.maximum(h, 0, out=h)
    area_b *= h
    area_a += area_b
    area_a -= iw  # union; NaN where a box is missing, and NaN > 0 is False
    return np.divide(iw, area_a, out=np.zeros_like(iw), where=area_a > 0)


def score_batch(batch: TubeBatch, protocol: TubeProtocol = PROTOCOLS["official"]) -> TubeScores:
    """tIoU and vIoU of every sample of a packed batch, vectorised over samples and frames."""
    n = len(batch)
    failure = batch.failure if batch.failure is not None else np.zeros(n, dtype=np.int8)
    viou, boxed_tiou = np.zeros(n), np.zeros(n)
    rows = max(1, _CHUNK_ELEMENTS // max(batch.gt_boxes.shape[2], 1))  # 5-10x faster than huge chunks
    for a in range(0, n, rows):
        b = min(a + rows, n)
        viou[a:b], boxed_tiou[a:b] = _viou_chunk(batch, protocol, a, b)
    if batch.min_overlap is not None:
        viou[~batch.min_overlap] = 0.0
    if batch.tiou_override is not None:
        tiou = batch.tiou_override.astype(np.float64).copy()
    elif protocol.intersection == "boxes" and protocol.union == "span":
        tiou = boxed_tiou  # |S_i| / |S_u|, S_i = the GT frames with a predicted box
    else:
        gs, ge = batch.gt_span[:, 0], batch.gt_span[:, 1]
        ps, pe = batch.pred_span[:, 0], batch.pred_span[:, 1]
        inter = np.clip(np.minimum(ge, pe) - np.maximum(gs, ps) + 1, 0, None)
        union = np.maximum(ge, pe) - np.minimum(gs, ps) + 1
        tiou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    failed = failure != 0
    tiou[failed] = 0.0
    viou[failed] = 0.0
    return TubeScores(tiou=tiou, viou=viou, failure=failure.copy())


def _viou_chunk(batch: TubeBatch, protocol: TubeProtocol, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(vIoU, |S_i| / denominator) of rows a..b-1."""
    gt = batch.gt_boxes[:, a:b]
    pr = batch.pred_boxes[:, a:b]
    iou = plane_box_iou(gt, pr)  # (n, L) float64
    if protocol.union == "boxes":
        has_gt = ~np.isnan(gt[0])
        has_pr = ~np.isnan(pr[0])
        inter, union = has_gt & has_pr, has_gt | has_pr
        if batch.counted is not None:
            inter &= batch.counted[a:b]
            union &= batch.counted[a:b]
        den = union.sum(axis=1)
    else:
        if protocol.intersection == "boxes":
            # S_i = the frames of the GT window with a predicted box (boxes are packed on it only)
            inter = ~np.isnan(pr[0])
        else:
            col = np.arange(iou.shape[1])[None, :]
            first = np.maximum(batch.gt_span[a:b, 0], batch.pred_span[a:b, 0]) - batch.origin[a:b]
            last = np.minimum(batch.gt_span[a:b, 1], batch.pred_span[a:b, 1]) - batch.origin[a:b]
            inter = (col >= first[:, None]) & (col <= last[:, None])
        if batch.counted is not None:
            inter &= batch.counted[a:b]
        assert batch.union_count is not None, "span protocols need union_count (pack_tubes sets it)"
        den = batch.union_count[a:b]
    # summed frame by frame in frame order (cumsum is sequential), as the official loops add them: a
    # vIoU exactly on a threshold then compares as it does there
    num = np.cumsum(np.where(inter, iou, 0.0), axis=1)[:, -1] if iou.shape[1] else np.zeros(len(iou))
    safe = np.maximum(den, 1)
    return np.where(den > 0, num / safe, 0.0), np.where(den > 0, inter.sum(axis=1) / safe, 0.0)


def score_tubes(items: Sequence[TubeInput], protocol: TubeProtocol = PROTOCOLS["official"]) -> TubeScores:
    """Score many samples: ``pack_tubes`` then ``score_batch``.

    Samples are packed in chunks of similar GT length (sorted, then restored to input order), so one
    long tube neither pads every row nor holds the whole benchmark's box planes in memory.
    """
    n = len(items)
    tiou, viou, failure = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int8)
    lengths = np.fromiter((it.gt_span[1] - it.gt_span[0] for it in items), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    for a in range(0, n, _PACK_CHUNK):
        idx = order[a : a + _PACK_CHUNK]
        part = score_batch(pack_tubes([items[i] for i in idx], protocol), protocol)
        tiou[idx], viou[idx], failure[idx] = part.tiou, part.viou, part.failure
    return TubeScores(tiou=tiou, viou=viou, failure=failure)


def score_tube(
    sample: Sample,
    pred_span_s: tuple[float, float] | None,
    pred_boxes: Boxes,
    protocol: TubeProtocol = PROTOCOLS["official"],
) -> TubeScore:
    """Score one answer (time span in seconds + boxes on native frames) against ``sample``'s GT tube.

    This is the function the prompting ceiling (label stage) and the evaluate stage share.

    >>> s = Sample("s", "synthetic", "v.mp4", "q", fps=10.0, n_frames=100, width=64, height=64,
    ...            gt_span_s=(1.0, 2.0), gt_span_frames=(10, 19), gt_boxes={f: (0, 0, 8, 8) for f in range(10, 20)})
    >>> score_tube(s, (1.0, 1.99), {f: (0, 0, 8, 8) for f in range(10, 20)})
    TubeScore(tiou=1.0, viou=1.0, failure=None)
    """
    return score_tubes([tube_input(sample, pred_span_s, pred_boxes, protocol)], protocol)[0]


# ----------------------------------------------------------------------------------------------- aggregates


def passes(values: np.ndarray, threshold: float | np.ndarray, op: ThresholdOp) -> np.ndarray:
    """``values > threshold`` or ``values >= threshold`` (broadcast)."""
    v = np.asarray(values, dtype=np.float64)
    return v >= threshold if op == ">=" else v > threshold


def aggregate_tubes(
    scores: TubeScores, protocol: TubeProtocol = PROTOCOLS["official"]
) -> dict[str, float | int]:
    """m_tIoU, m_vIoU, vIoU@R (and tIoU@R where the protocol reports it) over all samples, plus failure counts."""
    n = len(scores)
    out: dict[str, float | int] = {"n": n}
    out["m_tIoU"] = float(scores.tiou.mean()) if n else 0.0
    out["m_vIoU"] = float(scores.viou.mean()) if n else 0.0
    for r in protocol.iou_thresholds:
        out[f"vIoU@{r:g}"] = float(passes(scores.viou, r, protocol.threshold_op).mean()) if n else 0.0
    for r in protocol.tiou_thresholds:
        out[f"tIoU@{r:g}"] = float(passes(scores.tiou, r, protocol.threshold_op).mean()) if n else 0.0
    for i, name in enumerate(FAILURES):
        out[f"n_{name}"] = int((scores.failure == i + 1).sum())
    return out


def aggregate_by_group(
    scores: TubeScores, groups: Sequence[str], protocol: TubeProtocol = PROTOCOLS["official"]
) -> dict[str, dict[str, float | int]]:
    """``aggregate_tubes`` per group (VidSTG: declarative / interrogative) and over all samples."""
    labels = np.asarray(groups)
    out = {"all": aggregate_tubes(scores, protocol)}
    for g in sorted(set(labels.tolist())):
        keep = labels == g
        sub = TubeScores(scores.tiou[keep], scores.viou[keep], scores.failure[keep])
        out[g] = aggregate_tubes(sub, protocol)
    return out


# ----------------------------------------------------------------------------------------------- moments


def moment_metrics(
    pred_spans: np.ndarray | Sequence[tuple[float, float] | None],
    gt_spans: np.ndarray | Sequence[tuple[float, float]],
    *,
    thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    threshold_op: ThresholdOp = ">=",
    durations: Sequence[float] | None = None,
) -> dict[str, float | int]:
    """Charades-STA R@1 IoU=m and mIoU in seconds; None/NaN (unparsable) and reversed spans score 0, counted.

    GT ends are clipped to ``durations`` when given (the canonical Charades-STA parsing).

    >>> moment_metrics([(0.0, 10.0), None], [(0.0, 10.0), (0.0, 10.0)])["mIoU"]
    0.5
    """
    pred = np.array([(np.nan, np.nan) if p is None else p for p in pred_spans], dtype=np.float64).reshape(
        -1, 2
    )
    gt = np.asarray(gt_spans, dtype=np.float64).reshape(-1, 2).copy()
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predictions for {len(gt)} queries: they must align one to one")
    if durations is not None:
        gt[:, 1] = np.minimum(gt[:, 1], np.asarray(durations, dtype=np.float64))
    tiou = temporal_iou(pred[:, 0], pred[:, 1], gt[:, 0], gt[:, 1])
    n = len(gt)
    out: dict[str, float | int] = {"n": n}
    for m in thresholds:
        out[f"R@{m:g}"] = float(passes(tiou, m, threshold_op).mean()) if n else 0.0
    out["mIoU"] = float(tiou.mean()) if n else 0.0
    unparsable = ~np.isfinite(pred).all(axis=1)
    out["n_unparsable"] = int(unparsable.sum())
    out["n_reversed"] = int(((pred[:, 1] < pred[:, 0]) & ~unparsable).sum())
    return out


__all__ = [
    "FAILURES",
    "PROTOCOLS",
    "DenseBoxes",
    "TubeBatch",
    "TubeInput",
    "TubeProtocol",
    "TubeScore",
    "TubeScores",
    "aggregate_by_group",
    "aggregate_tubes",
    "evaluated_frame_ids",
    "for_frame_submission",
    "get_protocol",
    "moment_metrics",
    "pack_tubes",
    "passes",
    "plane_box_iou",
    "read_frames",
    "score_batch",
    "score_tube",
    "score_tubes",
    "seconds_to_frame",
    "seconds_to_span",
    "tube_input",
    "tubedetr_frame_ids",
    "uniform_frame_ids",
]
