"""Per-frame association for the stand-in: Ultralytics' BYTETrack / BoT-SORT fed with our detections.

Detections of every frame are associated with Ultralytics' own tracker classes (no Ultralytics
predictor in between). ByteTrack confirms a new track one frame late, so the first detection of each
confirmed track is back-filled (the stand-in's analogue of backward propagation). Masks come from a
-seg model when it has one, else from ``grabcut`` or the filled box. BoT-SORT gets each detection's
colour histogram (``colour.colour_feature``) as its ReID feature, used as a veto on matches
(``_gated``). Positions are tracked-frame positions; boxes are xyxy pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stvg.prompting.backends.base import FrameMasks
from stvg.prompting.identity import box_mask
from stvg.records import Detection


class _Dets:
    """The minimal Ultralytics ``Boxes``-like view BYTETrack reads: conf, cls, xywh, bool indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy = xyxy.reshape(-1, 4).astype(np.float32)
        self.conf = conf.astype(np.float32)
        self.cls = cls.astype(np.float32)

    @property
    def xywh(self) -> np.ndarray:
        x1, y1, x2, y2 = self.xyxy.T
        return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, idx: Any) -> _Dets:
        return _Dets(self.xyxy[idx], self.conf[idx], self.cls[idx])


def _ensure_lap() -> None:
    """Make ``import lap`` work for Ultralytics' trackers when the ``lap`` package is not installed.

    Ultralytics imports ``lap`` at module import and would try to pip-install it (disabled here). The
    stand-in solves the same assignment with SciPy's ``linear_sum_assignment`` and drops pairs above
    ``cost_limit`` (Ultralytics' own non-lap path); ``lap`` itself is preferred when installed.
    """
    try:
        import lap  # noqa: F401

        return
    except ImportError:
        pass
    import sys
    import types

    from scipy.optimize import linear_sum_assignment

    def lapjv(
        cost: np.ndarray, extend_cost: bool = True, cost_limit: float = np.inf
    ) -> tuple[float, Any, Any]:
        cost = np.asarray(cost, dtype=np.float64)
        x = np.full(cost.shape[0], -1, dtype=np.int64)
        y = np.full(cost.shape[1], -1, dtype=np.int64)
        rows, cols = linear_sum_assignment(
            np.minimum(cost, cost_limit + 1.0) if np.isfinite(cost_limit) else cost
        )
        total = 0.0
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] <= cost_limit:
                x[r], y[c] = c, r
                total += cost[r, c]
        return total, x, y

    shim = types.ModuleType("lap")
    shim.__version__ = "0-scipy-shim"  # type: ignore[attr-defined]
    shim.lapjv = lapjv  # type: ignore[attr-defined]
    sys.modules["lap"] = shim


def _tracker_args(kind: str, overrides: dict[str, Any] | None = None) -> Any:
    from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace

    cfg = YAML.load(ROOT / "cfg" / "trackers" / f"{kind}.yaml")
    cfg.update(overrides or {})
    if kind == "botsort":
        cfg["gmc_method"] = (
            "none"  # camera-motion compensation costs ~10 ms/frame; our scenes are static-camera
        )
        cfg.setdefault("with_reid", False)
    return IterableSimpleNamespace(**cfg)


class _Gate:
    """Mixin over an Ultralytics tracker whose association never pairs a track with another class
    (``class_aware``) or with a detection that looks different (appearance distance > ``appearance_gate``).

    Ultralytics' BYTETrack/BoT-SORT match on IoU (and score), so where two shapes cross, a track may
    jump to the other one (an ID switch). Gating costs by class and appearance keeps the high-score
    and new-track stages consistent; the low-score stage stays IoU-only (ByteTrack's own design),
    because partly hidden objects are the ones the detector misclassifies. Unlike BoT-SORT's own
    ReID fusion (``min(iou, appearance)``, which lets appearance *add* matches), appearance here only
    *removes* matches: a colour histogram is a weak re-identifier but a strong veto.
    """

    class_aware: bool = True
    appearance_gate: float = 0.0

    def get_dists(self, tracks: list[Any], detections: list[Any]) -> np.ndarray:
        from ultralytics.trackers.utils import matching

        dists = matching.iou_distance(tracks, detections)
        if self.args.fuse_score:  # type: ignore[attr-defined]
            dists = matching.fuse_score(dists, detections)
        if not dists.size:
            return dists
        if self.class_aware:
            track_cls = np.array([t.cls for t in tracks], dtype=np.float64)
            det_cls = np.array([d.cls for d in detections], dtype=np.float64)
            dists = np.where(track_cls[:, None] == det_cls[None, :], dists, 1.0)
        return self._appearance_veto(tracks, detections, dists)

    def _appearance_veto(self, tracks: list[Any], detections: list[Any], dists: np.ndarray) -> np.ndarray:
        from ultralytics.trackers.utils import matching

        if self.appearance_gate <= 0 or getattr(self, "encoder", None) is None or not dists.size:
            return dists
        known_t = np.array([getattr(t, "smooth_feat", None) is not None for t in tracks])
        known_d = np.array([getattr(d, "curr_feat", None) is not None for d in detections])
        emb = matching.embedding_distance(tracks, detections)  # 1 - cosine, in [0, 1] here
        veto = (emb > self.appearance_gate) & known_t[:, None] & known_d[None, :]
        return np.where(veto, 1.0, dists)

    def _second_association(
        self,
        strack_pool: list[Any],
        u_track: list[int],
        detections_second: list[Any],
        activated: list[Any],
        refind: list[Any],
        lost: list[Any],
    ) -> None:
        """ByteTrack's low-score stage (IoU, threshold 0.5) with the appearance veto added.

        The class gate stays off here, but colour survives partial occlusion: without the veto, a
        track whose object went behind another one takes over the occluder's low-score box.
        """
        from ultralytics.trackers.basetrack import TrackState
        from ultralytics.trackers.utils import matching

        remaining = [strack_pool[i] for i in u_track if strack_pool[i].state == TrackState.Tracked]
        if remaining and detections_second:
            dists = self._appearance_veto(
                remaining, detections_second, matching.iou_distance(remaining, detections_second)
            )
            matches, u_left, _ = matching.linear_assignment(dists, thresh=0.5)
            self._apply_matches(matches, remaining, detections_second, activated, refind)  # type: ignore[attr-defined]
        else:
            u_left = list(range(len(remaining)))
        for it in u_left:
            remaining[it].mark_lost()
            lost.append(remaining[it])


def _gated(base: type, class_aware: bool, appearance_gate: float) -> type:
    """``base`` (an Ultralytics tracker class) with the ``_Gate`` association."""
    attrs = {"class_aware": class_aware, "appearance_gate": appearance_gate}
    return type(f"Gated{base.__name__}", (_Gate, base), attrs)


@dataclass
class DetectionTracker:
    """CPU backend: per-frame detections associated by BYTETrack or BoT-SORT (Ultralytics classes)."""

    kind: str = "bytetrack"
    class_aware: bool = True
    appearance_gate: float = 0.0  # botsort: veto matches whose colour features differ more; 0 = off
    settings: dict[str, Any] = field(default_factory=dict)  # overrides of Ultralytics' tracker yaml
    _tracker: Any = None
    _pending: dict[int, list[tuple[int, np.ndarray, float, int]]] = field(default_factory=dict)
    _confirmed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.kind not in ("bytetrack", "botsort"):
            raise ValueError(f"prompt.synthetic_cpu.tracker must be bytetrack or botsort, got {self.kind!r}")
        self.reset()

    def reset(self) -> None:
        """Start a new video."""
        _ensure_lap()
        if self.kind == "botsort":
            from ultralytics.trackers.bot_sort import BOTSORT as base
        else:
            from ultralytics.trackers.byte_tracker import BYTETracker as base
        reid = self.kind == "botsort" and self.appearance_gate > 0
        settings = {**self.settings, **({"with_reid": True, "model": "auto"} if reid else {})}
        gated = self.class_aware or reid
        cls = _gated(base, self.class_aware, self.appearance_gate if reid else 0.0) if gated else base
        self._tracker = cls(_tracker_args(self.kind, settings))
        self._pending = {}
        self._confirmed = set()

    def update(
        self,
        position: int,
        frame: np.ndarray,
        detections: Sequence[tuple[Detection, np.ndarray | None]],
        features: np.ndarray | None = None,
    ) -> tuple[FrameMasks, dict[int, int], list[tuple[int, int, np.ndarray, float, int]]]:
        """Associate one frame's detections (``features``: (N, D) appearance, used by botsort).

        Returns the frame's masks, each track's class id on it, and the back-filled observations of
        tracks confirmed now, as ``(position, id, mask, score, class id)``.
        """
        h, w = frame.shape[:2]
        boxes = np.array([d.box for d, _ in detections], dtype=np.float32).reshape(-1, 4)
        dets = _Dets(
            boxes,
            np.array([d.score for d, _ in detections], dtype=np.float32),
            np.array([d.class_id for d, _ in detections], dtype=np.float32),
        )
        img = frame[..., ::-1] if self.kind == "botsort" else None
        feats = features if getattr(self._tracker, "encoder", None) is not None else None
        rows = self._tracker.update(dets, img, feats=feats)

        def mask_of(i: int) -> np.ndarray:
            m = detections[i][1]
            return np.asarray(m, dtype=bool) if m is not None else box_mask(detections[i][0].box, h, w)

        out: FrameMasks = {}
        labels: dict[int, int] = {}
        backfill: list[tuple[int, int, np.ndarray, float, int]] = []
        for row in rows:
            tid, idx = int(row[4]), int(row[7])
            out[tid] = (mask_of(idx), float(row[5]))
            labels[tid] = int(detections[idx][0].class_id)
            if tid not in self._confirmed:
                self._confirmed.add(tid)
                backfill.extend((pos, tid, m, s, c) for pos, m, s, c in self._pending.pop(tid, []))
        for track in self._tracker.tracked_stracks:
            if not track.is_activated and track.frame_id == self._tracker.frame_id:
                idx = int(track.idx)
                self._pending.setdefault(int(track.track_id), []).append(
                    (position, mask_of(idx), float(track.score), int(detections[idx][0].class_id))
                )
        if len(self._pending) > 256:  # unconfirmed tracks that never confirm: keep memory bounded
            for tid in sorted(self._pending)[:-128]:
                del self._pending[tid]
        return out, labels, backfill
