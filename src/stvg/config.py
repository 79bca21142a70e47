"""Typed, frozen, validated parameters: ``params.yaml`` is the one source, one section per stage.

``load_params(path)`` builds one frozen dataclass per section. An unknown key, a wrong type or an
impossible value raises ``ParamsError`` naming the key and the fix. ``apply_overrides`` writes an
overrides file (e.g. ``params.paper.yaml``) into ``params.yaml`` keeping its comments, which is how the
paper-scale set is switched on (``stvg params apply params.paper.yaml``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from stvg.training.answer import DEFAULT_DIALECT, DIALECTS, Dialect


class ParamsError(ValueError):
    """A parameter is unknown, mistyped or impossible; the message names the key and the fix."""


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ParamsError(f"params: `{key}` {message}")


def _require_device(spec: str, key: str) -> None:
    from stvg.runtime import DEVICE_CHOICES, is_device_spec

    _require(is_device_spec(spec), key, f"must be one of {DEVICE_CHOICES}, got {spec!r}")


def _looks_like_number(value: Any) -> bool:
    """A string YAML 1.1 left unparsed although it is a number (``1e-06``: no dot, so not a float)."""
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


# ----------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataParams:
    """Which data set the pipeline runs on and how strictly annotations are read."""

    dataset: str = "synthetic"
    train_annotation: str = "synthetic/anno_v2/train_v2.json"
    test_annotation: str = "synthetic/anno_v2/val_v2.json"
    video_root: str = "synthetic/video_parts"
    max_videos: int = 0
    skip_invalid: bool = False
    max_invalid_fraction: float = 0.05  # raw gate: share of a file's samples skipped as invalid, at most
    clip_boxes: bool = False  # clip GT boxes to the frame instead of rejecting them (CG-STVG clips)
    vidor_root: str = ""  # VidSTG: VidOR annotation folder with the box trajectories; "" = no boxes
    max_entries: int = 0  # ST-Align: first N entries (official protocol: 2000); 0 = all

    def __post_init__(self) -> None:
        from stvg.records import DATASETS

        _require(
            self.dataset in DATASETS,
            "data.dataset",
            f"must be one of {', '.join(DATASETS)}, got {self.dataset!r}",
        )
        _require(self.max_videos >= 0, "data.max_videos", "must be >= 0 (0 = all videos)")
        _require(
            0.0 <= self.max_invalid_fraction <= 1.0,
            "data.max_invalid_fraction",
            f"must be a fraction in [0, 1], got {self.max_invalid_fraction}",
        )
        _require(self.max_entries >= 0, "data.max_entries", "must be >= 0 (0 = all; ST-Align official: 2000)")
        _require(
            not self.vidor_root or self.dataset == "vidstg",
            "data.vidor_root",
            "only applies to data.dataset: vidstg; set it to an empty string",
        )
        _require(
            not self.max_entries or self.dataset == "st-align",
            "data.max_entries",
            "only applies to data.dataset: st-align; set it to 0",
        )


@dataclass(frozen=True)
class DownloadSource:
    """One release file: fetched over HTTP(S), registered from a local path, or generated."""

    name: str
    kind: Literal["http", "local", "synthetic"] = "http"
    url: str = ""
    path: str = ""
    sha256: str = ""
    extract: bool = False
    dest: str = ""

    def __post_init__(self) -> None:
        key = f"download.sources[{self.name}]"
        plain = bool(self.name) and all(c.isascii() and (c.isalnum() or c in "_.-") for c in self.name)
        _require(plain, f"{key}.name", "must be a plain name of letters, digits, '_', '.', '-'")
        dest = Path(self.dest or self.name)  # written as data/<dest>, replaced as a whole
        _require(
            not dest.is_absolute() and dest.parts and ".." not in dest.parts and "\\" not in str(dest),
            f"{key}.dest",
            "must be a relative folder under data/ without '..' (default: the source name)",
        )
        if self.kind == "http":
            _require(self.url.startswith(("http://", "https://")), f"{key}.url", "must be an http(s) URL")
            hex64 = len(self.sha256) == 64 and all(c in "0123456789abcdefABCDEF" for c in self.sha256)
            _require(not self.sha256 or hex64, f"{key}.sha256", "must be a 64-hex SHA-256 or empty")
        if self.kind == "local":
            _require(bool(self.path), f"{key}.path", "must name an existing local file or folder")


@dataclass(frozen=True)
class DownloadParams:
    """How raw data reaches ``data/``."""

    sources: tuple[DownloadSource, ...] = (
        DownloadSource(name="synthetic", kind="synthetic", dest="synthetic"),
    )
    retries: int = 3
    retry_delay_s: float = 2.0
    timeout_s: float = 60.0
    chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        _require(self.retries >= 0, "download.retries", "must be >= 0")
        _require(self.timeout_s > 0, "download.timeout_s", "must be > 0 seconds")
        _require(self.chunk_bytes >= 1024, "download.chunk_bytes", "must be >= 1024")
        names = [s.name for s in self.sources]
        _require(len(set(names)) == len(names), "download.sources", f"names must be unique, got {names}")


@dataclass(frozen=True)
class SyntheticParams:
    """The deterministic synthetic STVG benchmark (the embedded default's data)."""

    seed: int = 0
    n_train: int = 24
    n_val: int = 8
    width: int = 320
    height: int = 240
    fps: float = 10.0
    duration_s: float = 8.0
    min_instances: int = 3
    max_instances: int = 5
    shape_size: tuple[int, int] = (28, 48)
    speed_px_s: tuple[float, float] = (30.0, 60.0)  # [min, max] speed of a moving segment, pixels/s
    segment_s: tuple[float, float] = (1.0, 2.5)  # [min, max] duration of one motion segment, seconds
    p_enter: float = 0.35  # chance that a non-first shape enters mid-video from an edge
    p_leave: float = 0.3  # chance that a shape leaves through an edge in the second half
    min_visible_px: int = 16  # a target is "visible" on a frame with at least this many pixels
    max_attempts: int = 50  # scenes drawn per video until one has an unambiguous expression

    def __post_init__(self) -> None:
        _require(self.n_train >= 1 and self.n_val >= 1, "synthetic.n_train/n_val", "must be >= 1")
        _require(self.width >= 64 and self.height >= 64, "synthetic.width/height", "must be >= 64 pixels")
        _require(self.fps > 0, "synthetic.fps", "must be > 0")
        _require(self.duration_s >= 2, "synthetic.duration_s", "must be >= 2 seconds")
        _require(
            2 <= self.min_instances <= self.max_instances,
            "synthetic.min_instances",
            "must be >= 2 (a distractor is needed) and <= synthetic.max_instances",
        )
        _require(
            0 < self.shape_size[0] <= self.shape_size[1], "synthetic.shape_size", "must be [min, max] pixels"
        )
        _require(
            self.shape_size[1] * 2 <= min(self.width, self.height),
            "synthetic.shape_size",
            "max must be <= half the smaller frame side (shapes need room to move)",
        )
        _require(
            0 < self.speed_px_s[0] <= self.speed_px_s[1], "synthetic.speed_px_s", "must be [min, max] > 0"
        )
        _require(
            0 < self.segment_s[0] <= self.segment_s[1] and self.segment_s[0] * self.fps >= 2,
            "synthetic.segment_s",
            "must be [min, max] seconds with min * fps >= 2 frames",
        )
        for key in ("p_enter", "p_leave"):
            _require(0 <= getattr(self, key) <= 1, f"synthetic.{key}", "must be a probability in [0, 1]")
        _require(self.min_visible_px >= 1, "synthetic.min_visible_px", "must be >= 1 pixel")
        _require(self.max_attempts >= 1, "synthetic.max_attempts", "must be >= 1")


@dataclass(frozen=True)
class DetectorParams:
    """Object detector: a weights file, an architecture yaml trained on the synthetic frames, or YOLOv12-x."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N (training; inference runs on prompt.device)
    weights: str = ""  # a .pt file or a registered name; "" = train `arch` on the synthetic frames
    weights_sha256: str = (
        ""  # pin of `weights`: a given checkpoint must match it (`stvg weights fetch` prints it)
    )
    allow_unpinned_weights: bool = False  # true: load a given checkpoint without a pin (not for shared runs)
    arch: str = "yolov8n.yaml"
    conf: float = 0.25
    classes: tuple[str, ...] = ()  # class-name filter; () = all classes (paper: ("person",) on HC-STVG)
    imgsz: int = 256
    epochs: int = 16
    batch: int = 16
    n_train_frames: int = 400
    n_val_frames: int = 80
    crowded_fraction: float = 0.5  # share of training frames drawn where shapes touch or overlap
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        _require_device(self.device, "detector.device")
        _require(0 < self.conf < 1, "detector.conf", "must be in (0, 1) (paper: 0.25)")
        hex64 = len(self.weights_sha256) == 64 and all(
            c in "0123456789abcdefABCDEF" for c in self.weights_sha256
        )
        _require(
            not self.weights_sha256 or hex64, "detector.weights_sha256", "must be a 64-hex SHA-256 or empty"
        )
        _require(self.imgsz >= 32 and self.imgsz % 32 == 0, "detector.imgsz", "must be a multiple of 32")
        _require(self.epochs >= 1, "detector.epochs", "must be >= 1")
        _require(self.batch >= 1, "detector.batch", "must be >= 1")
        _require(self.threads >= 1, "detector.threads", "must be >= 1")
        _require(0 <= self.crowded_fraction <= 1, "detector.crowded_fraction", "must be in [0, 1]")


BACKENDS = ("synthetic_cpu", "sam2")  # prompt.backend values; each has its own section of the same name


@dataclass(frozen=True)
class DetectParams:
    """prompt.detect: which of the detector's boxes become prompts (both backends)."""

    drop_composites: bool = (
        True  # drop a box that is the union of >= 2 other boxes of its frame (a group box)
    )
    composite_min_inside: float = 0.85  # ... each of those lies this much inside it
    composite_min_union_iou: float = 0.8  # ... and their union box overlaps it this much

    def __post_init__(self) -> None:
        for key in ("composite_min_inside", "composite_min_union_iou"):
            _require(0 < getattr(self, key) <= 1, f"prompt.detect.{key}", "must be in (0, 1]")


@dataclass(frozen=True)
class RepairParams:
    """prompt.repair: whole-video ID repair and gap filling on the backend's raw tracks (both backends)."""

    enabled: bool = True  # split switches, merge fragments, drop short tracks, renumber 1..K
    merge_max_gap_s: float = (
        2.0  # fragments closer than this in time may be merged (and gaps filled), seconds
    )
    merge_min_iou: float = 0.3  # ... when the extrapolated boxes overlap at least this much
    merge_max_center_dist: float = 1.0  # ... or the predicted centre lies within this many box sides; 0 = off
    merge_max_overlap_s: float = 1.0  # ... or starts up to this long before the earlier one ends, seconds
    merge_motion_window: int = 4  # observations fitting a fragment's velocity and size
    size_filter_ratio: float = 0.0  # drop masks < ratio x the frame's largest (official code: 1/3); 0 = off
    min_track_frames: int = 2  # tracks shorter than this are dropped as noise
    fill_gaps: bool = True  # fill short gaps inside a track with the visible part of the interpolated box

    def __post_init__(self) -> None:
        _require(self.merge_max_gap_s >= 0, "prompt.repair.merge_max_gap_s", "must be >= 0 seconds")
        _require(self.merge_max_overlap_s >= 0, "prompt.repair.merge_max_overlap_s", "must be >= 0 seconds")
        _require(
            self.merge_max_center_dist >= 0, "prompt.repair.merge_max_center_dist", "must be >= 0 (0 = off)"
        )
        _require(self.merge_motion_window >= 1, "prompt.repair.merge_motion_window", "must be >= 1")
        _require(0 <= self.merge_min_iou <= 1, "prompt.repair.merge_min_iou", "must be in [0, 1]")
        _require(
            0 <= self.size_filter_ratio < 1,
            "prompt.repair.size_filter_ratio",
            "must be in [0, 1) (official code: 0.333)",
        )
        _require(self.min_track_frames >= 1, "prompt.repair.min_track_frames", "must be >= 1 frame")


@dataclass(frozen=True)
class RenderParams:
    """prompt.render: the red IDs burnt into the frames (official ``mask2marker.py`` style)."""

    label_anchor: Literal["distance", "midrow"] = "distance"  # inside-mask peak | official mid-row rule
    label_placement: Literal["centred", "official"] = "centred"  # official: text's bottom-left at the anchor
    font_px: float = 20.0  # ID text height at the reference size (paper: 20 px at 336 px)
    font_ref_px: int = 336  # reference longer side, pixels

    def __post_init__(self) -> None:
        _require(self.font_px > 0 and self.font_ref_px > 0, "prompt.render.font_px", "must be > 0")
        _require(
            self.label_placement in ("centred", "official"),
            "prompt.render.label_placement",
            "must be centred (text centred on the anchor, kept inside the frame) or official "
            "(mask2marker.py: the text's bottom-left corner at the anchor, no clipping)",
        )


@dataclass(frozen=True)
class SamplingParams:
    """prompt.sampling: the frames and frame size the policy sees (qwen-vl-utils' arithmetic)."""

    fps: float = 2.0  # policy sampling rate (paper: 2 fps)
    total_pixels: int = 2048 * 28 * 28  # pixel budget over all sampled frames (code: 2048*28*28)
    min_pixels: int = 16 * 28 * 28  # per-frame minimum
    max_frame_pixels: int = 768 * 28 * 28  # per-frame maximum
    resize: Literal["area", "bicubic"] = "area"  # area: OpenCV INTER_AREA | bicubic: qwen-vl-utils' kernel

    def __post_init__(self) -> None:
        _require(self.fps > 0, "prompt.sampling.fps", "must be > 0 (paper: 2)")
        _require(
            self.resize in ("area", "bicubic"),
            "prompt.sampling.resize",
            "must be area (OpenCV's area filter) or bicubic (torch bicubic with antialiasing, as "
            "qwen-vl-utils resizes)",
        )
        _require(
            self.total_pixels >= self.min_pixels > 0,
            "prompt.sampling.total_pixels",
            "must be >= prompt.sampling.min_pixels > 0",
        )


@dataclass(frozen=True)
class Sam2Params:
    """prompt.sam2: the paper's backend (SAM2.1 image + video predictors, keyframe re-detection)."""

    cfg: str = "configs/sam2.1/sam2.1_hiera_t.yaml"  # SAM2.1 config (paper: sam2.1_hiera_l.yaml)
    checkpoint: str = ""  # SAM2.1 .pt; "" = random weights (speed tests only)
    image_size: int = 1024  # SAM2 input size, pixels
    redetect_every: int = 15  # frames between re-detections (paper: 15)
    id_iou: float = 0.4  # a detection's mask is an existing instance when mask IoU >= this (code: 0.4)
    containment: bool = False  # the official containment rule (larger mask wins, old ID deleted): off
    containment_ratio: float = 0.6  # containment threshold when enabled (code: 0.6)
    backward: bool = True  # propagate new instances back to their first appearance (paper)
    window: int = 64  # frames per SAM2 session: bounds host memory (frames held), not tracking
    offload_to_cpu: bool = True  # keep SAM2 frame features and state on the CPU

    def __post_init__(self) -> None:
        _require(self.redetect_every >= 1, "prompt.sam2.redetect_every", "must be >= 1 frame (paper: 15)")
        _require(0 < self.id_iou <= 1, "prompt.sam2.id_iou", "must be in (0, 1] (official code: 0.4)")
        _require(0 < self.containment_ratio <= 1, "prompt.sam2.containment_ratio", "must be in (0, 1]")
        _require(self.window >= 2, "prompt.sam2.window", "must be >= 2 frames")
        _require(
            self.image_size >= 64 and self.image_size % 16 == 0,
            "prompt.sam2.image_size",
            "must be a multiple of 16, >= 64 (paper: 1024)",
        )


@dataclass(frozen=True)
class SyntheticCpuParams:
    """prompt.synthetic_cpu: the flat-colour CPU stand-in (per-frame YOLO, GrabCut, BoT-SORT, colour)."""

    tracker: Literal["bytetrack", "botsort"] = "botsort"  # association: botsort (+ colour ReID) | bytetrack
    class_aware: bool = True  # never associate a track with a detection of another class
    box_refine: Literal["grabcut", "none"] = "grabcut"  # masks for box-only detections: GrabCut | filled box
    appearance_gate: float = 0.5  # colour-histogram distance above which tracks never match or merge; 0 = off
    split_blob_ratio: float = 1.6  # cut a track where its box swells this much around another's; 0 = off
    extend_ends: bool = True  # follow tracks past their first/last detection by colour and motion
    extend_hidden_fraction: float = (
        0.9  # ... also on/under a same-coloured shape when this share fits; 0 = off
    )

    def __post_init__(self) -> None:
        _require(
            0 <= self.appearance_gate <= 1,
            "prompt.synthetic_cpu.appearance_gate",
            "must be in [0, 1] (0 = off)",
        )
        _require(
            self.split_blob_ratio == 0 or self.split_blob_ratio > 1,
            "prompt.synthetic_cpu.split_blob_ratio",
            "must be > 1 (a box larger than the track's recent size) or 0 (off)",
        )
        _require(
            0 <= self.extend_hidden_fraction <= 1,
            "prompt.synthetic_cpu.extend_hidden_fraction",
            "must be in [0, 1] (0 = off)",
        )


RAY_ADDRESS_FORMS = "'' (start a local cluster), auto, ray://HOST:PORT or HOST:PORT"


def _require_ray_address(address: str, key: str) -> None:
    port = address.rsplit(":", 1)[1] if ":" in address else ""
    ok = address in ("", "auto") or address.startswith("ray://") or port.isdigit()
    _require(ok, key, f"must be one of {RAY_ADDRESS_FORMS}, got {address!r}")


# prompt.ray.transfer: shared filesystem paths | Ray's object store (no shared filesystem)
RAY_TRANSFERS = ("files", "object_store")


@dataclass(frozen=True)
class PromptRayParams:
    """prompt.ray: how the ``ray`` executor spreads videos over a cluster (operational: no entry changes)."""

    address: str = (
        ""  # "" = start a one-node cluster in the stage command | auto | ray://HOST:10001 | HOST:6379
    )
    gpus_per_task: float = 0.0  # GPUs each worker actor holds (paper scale: 1)
    cpus_per_task: float = 1.0  # CPUs each worker actor holds
    max_retries: int = 2  # re-submissions of a video whose worker process died (os._exit, OOM kill)
    max_in_flight: int = (
        0  # videos prompted at once = worker actors; 0 = as many as the cluster's CPUs/GPUs fit
    )
    recycle_every: int = (
        50  # a worker actor is replaced after this many videos (sheds leaked memory); 0 = never
    )
    transfer: str = "files"  # how videos reach workers and entries come back: files | object_store
    staging: str = ""  # transfer files: folder every worker node writes entries to; "" = <out>/.staging

    def __post_init__(self) -> None:
        _require_ray_address(self.address, "prompt.ray.address")
        _require(self.transfer in RAY_TRANSFERS, "prompt.ray.transfer", f"must be one of {RAY_TRANSFERS}")
        _require(self.gpus_per_task >= 0, "prompt.ray.gpus_per_task", "must be >= 0 (paper scale: 1)")
        _require(self.cpus_per_task > 0, "prompt.ray.cpus_per_task", "must be > 0")
        _require(self.max_retries >= 0, "prompt.ray.max_retries", "must be >= 0")
        _require(self.max_in_flight >= 0, "prompt.ray.max_in_flight", "must be >= 0 (0 = fit the cluster)")
        _require(self.recycle_every >= 0, "prompt.ray.recycle_every", "must be >= 0 (0 = never)")


@dataclass(frozen=True)
class PromptParams:
    """Visual prompting: detect -> segment/track (one backend) -> repair IDs -> overlay -> sample.

    Only the chosen backend's section may be set: a ``prompt.sam2`` block under ``backend:
    synthetic_cpu`` (or the reverse) would do nothing, so it is an error instead of a silent no-op.
    """

    device: str = "auto"  # auto | cpu | cuda | cuda:N, for the detector and SAM2 (stvg.runtime)
    executor: Literal["local", "ray"] = "local"  # where videos are prompted (operational: no entry changes)
    ray: PromptRayParams = field(default_factory=PromptRayParams)  # used by executor: ray
    backend: Literal["synthetic_cpu", "sam2"] = "synthetic_cpu"
    track_fps: float = 0.0  # tracking rate; 0 = native fps
    max_frames: int = 0  # cap on tracked frames per video; 0 = no cap
    max_churn: float = 1.0  # quality gate: new IDs per tracked second
    max_repairs_per_video: int = 50  # quality gate
    max_failed_fraction: float = 0.05  # quality gate: share of the data set's videos that failed to prompt
    detect: DetectParams = field(default_factory=DetectParams)
    repair: RepairParams = field(default_factory=RepairParams)
    render: RenderParams = field(default_factory=RenderParams)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    sam2: Sam2Params | None = None  # set only with backend: sam2 (defaults when absent)
    synthetic_cpu: SyntheticCpuParams | None = (
        None  # set only with backend: synthetic_cpu (defaults when absent)
    )

    def __post_init__(self) -> None:
        _require_device(self.device, "prompt.device")
        _require(self.executor in ("local", "ray"), "prompt.executor", "must be local or ray")
        _require(self.track_fps >= 0, "prompt.track_fps", "must be >= 0 (0 = native)")
        _require(self.max_frames >= 0, "prompt.max_frames", "must be >= 0 (0 = no cap)")
        _require(0 <= self.max_failed_fraction <= 1, "prompt.max_failed_fraction", "must be in [0, 1]")
        for name in BACKENDS:
            _require(
                name == self.backend or getattr(self, name) is None,
                f"prompt.{name}",
                f"does nothing with prompt.backend: {self.backend}; remove the section "
                f"(or set prompt.backend: {name})",
            )
        if getattr(self, self.backend) is None:
            defaults = {"sam2": Sam2Params, "synthetic_cpu": SyntheticCpuParams}[self.backend]()
            object.__setattr__(self, self.backend, defaults)

    @property
    def backend_params(self) -> Sam2Params | SyntheticCpuParams:
        """The chosen backend's section."""
        section = getattr(self, self.backend)
        assert section is not None  # set by __post_init__
        return section


@dataclass(frozen=True)
class LabelParams:
    """Label reconstruction by majority vote, with confidence thresholds."""

    min_vote_share: float = 0.5  # below: dropped
    flag_vote_share: float = 0.7  # below (and above min): kept but flagged
    min_mean_iou: float = 0.3
    min_presence: float = 0.5  # fraction of GT frames where the winner is present
    max_drop_fraction: float = 0.2  # GX gate: the flow stops when more samples than this are dropped
    frame_alignment: Literal["official", "annotation"] = (
        "official"  # official: GT box k vs mask frame st_frame + k
    )
    box_convention: Literal["official", "exclusive"] = "official"  # official: trainjson.py's +1 IoU
    tie_break: Literal["official", "iou_sum"] = "official"  # official: the instance that won a frame first

    def __post_init__(self) -> None:
        for key in ("min_vote_share", "flag_vote_share", "min_mean_iou", "min_presence", "max_drop_fraction"):
            _require(0 <= getattr(self, key) <= 1, f"label.{key}", "must be in [0, 1]")
        for key, allowed in (
            ("frame_alignment", ("official", "annotation")),
            ("box_convention", ("official", "exclusive")),
            ("tie_break", ("official", "iou_sum")),
        ):
            _require(getattr(self, key) in allowed, f"label.{key}", f"must be one of {list(allowed)}")
        _require(
            self.flag_vote_share >= self.min_vote_share,
            "label.flag_vote_share",
            "must be >= label.min_vote_share",
        )


@dataclass(frozen=True)
class TinyModelParams:
    """The embedded default's policy: a tiny random-weight Qwen2.5-VL and an offline tokenizer."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vocab_size: int = 1024
    seed: int = 0
    format_steps: int = 0  # format warm-up steps (training/warmup.py); 0 = a purely random model
    format_lr: float = 3e-3
    format_batch: int = 4

    def __post_init__(self) -> None:
        _require(self.hidden_size % self.num_heads == 0, "train.tiny.hidden_size", "must divide by num_heads")
        _require(self.format_steps >= 0, "train.tiny.format_steps", "must be >= 0 (0 = no warm-up)")
        _require(self.format_lr > 0, "train.tiny.format_lr", "must be > 0")
        _require(self.format_batch >= 1, "train.tiny.format_batch", "must be >= 1")
        _require(self.vocab_size >= 300, "train.tiny.vocab_size", "must be >= 300 (bytes + merges)")


@dataclass(frozen=True)
class TrainParams:
    """GRPO training of the policy; ``grpo`` passes through to TRL's GRPOConfig unchanged."""

    model: str = "tiny"  # "tiny" (built by the base_model stage), a local path, or a Hugging Face id
    tiny: TinyModelParams = field(default_factory=TinyModelParams)
    reward_weights: dict[str, float] = field(
        default_factory=lambda: {"format": 1.0, "tiou": 1.0, "object": 1.0}
    )
    gate_on_format: bool = False
    answer_parser: Dialect = DEFAULT_DIALECT  # training.answer dialect of the rewards (official | lenient)
    reward_id_needs_time: bool = True  # official: the ID reward needs a parsable time range too
    max_samples: int = 0  # 0 = all kept labels
    seed: int = 0
    # operational (no output changes): refuse a plain CUDA run whose weights, reference, gradients and
    # optimizer state take more of the GPU than this (training.memory); 0 = no check
    max_static_gpu_fraction: float = 0.9
    grpo: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.reward_weights) - {"format", "tiou", "object"}
        _require(
            not unknown,
            "train.reward_weights",
            f"has unknown rewards {sorted(unknown)}; use format/tiou/object",
        )
        # TRL's GRPOConfig validates the rest of the passthrough block itself, but takes a number left
        # as a string (YAML 1.1 reads `1e-06` as text) and fails later, inside the optimizer.
        for k, v in self.grpo.items():
            if _looks_like_number(v):
                raise ParamsError(
                    f"params: `train.grpo.{k}` is the string {v!r}, not a number (YAML 1.1 reads an exponent "
                    f"without a dot as text); write {yaml11_float_text(float(v))}"
                )
        _require(self.answer_parser in DIALECTS, "train.answer_parser", f"must be one of {list(DIALECTS)}")
        _require(
            0 <= self.max_static_gpu_fraction <= 1,
            "train.max_static_gpu_fraction",
            "must be in [0, 1] (0 = no check)",
        )
        # TRL's GRPOConfig validates the rest of the passthrough block itself.
        n_gen = self.grpo.get("num_generations", 8)
        _require(
            isinstance(n_gen, int) and n_gen >= 2, "train.grpo.num_generations", "must be an integer >= 2"
        )


@dataclass(frozen=True)
class EvaluateRayParams:
    """evaluate.ray: where the policy replicas run when ``evaluate.replicas`` > 1 (operational)."""

    address: str = ""  # "" = start a one-node cluster in the stage | auto | ray://HOST:10001 | HOST:6379
    gpus_per_replica: float = 0.0  # GPUs each replica holds (paper scale: 1)
    cpus_per_replica: float = 1.0  # CPUs each replica holds

    def __post_init__(self) -> None:
        _require_ray_address(self.address, "evaluate.ray.address")
        _require(self.gpus_per_replica >= 0, "evaluate.ray.gpus_per_replica", "must be >= 0 (paper scale: 1)")
        _require(self.cpus_per_replica > 0, "evaluate.ray.cpus_per_replica", "must be > 0")


@dataclass(frozen=True)
class EvaluateParams:
    """Policy evaluation and the official metrics."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N, for the policy's generation
    protocol: Literal["official", "tubedetr", "stvg-r1", "st-align"] = (
        "official"  # evaluation.metrics.PROTOCOLS
    )
    threshold_op: Literal[">", ">="] | None = None  # None: the protocol's own (official: >, stvg-r1: >=)
    iou_thresholds: tuple[float, ...] = (0.3, 0.5)
    answer_parser: Dialect = DEFAULT_DIALECT  # training.answer dialect (official | lenient)
    normalize_query: bool = False  # official evaluate.py: the sentence goes into the prompt as written
    batch_size: int = 4
    max_new_tokens: int = 64
    do_sample: bool = False
    baselines: tuple[str, ...] = ("oracle", "random")
    random_draws: int = 200  # random baseline runs behind random/expected|p95|below_policy/…; 0 = one draw
    min_parse_rate: float = 0.5  # predictions gate: share of parsable answers per policy
    seed: int = 0
    replicas: int = 1  # policy replicas generating in parallel (Ray actors, evaluate.ray); 1 = this process
    ray: EvaluateRayParams = field(default_factory=EvaluateRayParams)

    def __post_init__(self) -> None:
        _require_device(self.device, "evaluate.device")
        _require(all(0 < t < 1 for t in self.iou_thresholds), "evaluate.iou_thresholds", "must be in (0, 1)")
        unknown = set(self.baselines) - {"oracle", "random"}
        _require(
            not unknown, "evaluate.baselines", f"has unknown baselines {sorted(unknown)}; use oracle/random"
        )
        _require(
            self.random_draws >= 0, "evaluate.random_draws", "must be >= 0 (0 = the one seeded draw only)"
        )
        _require(0 <= self.min_parse_rate <= 1, "evaluate.min_parse_rate", "must be in [0, 1]")
        _require(self.batch_size >= 1, "evaluate.batch_size", "must be >= 1")
        _require(self.replicas >= 1, "evaluate.replicas", "must be >= 1 (1 = generate in this process)")
        _require(self.max_new_tokens >= 1, "evaluate.max_new_tokens", "must be >= 1")
        _require(self.answer_parser in DIALECTS, "evaluate.answer_parser", f"must be one of {list(DIALECTS)}")
        _require(
            self.protocol in ("official", "tubedetr", "stvg-r1", "st-align"),
            "evaluate.protocol",
            "must be one of official, tubedetr, stvg-r1, st-align",
        )


@dataclass(frozen=True)
class RegistryParams:
    """Model registry and the promotion gate."""

    model_name: str = "stvg-r1"
    experiment: str = "stvg-r1"
    primary_metric: str = "m_vIoU"
    margin: float = 0.0  # challenger must beat the champion's primary metric by more than this
    tolerance: float = 0.02  # allowed regression on the other metrics
    # metrics checked for regression; () = the champion's own scores (registry_gate.gated_by_default:
    # not the baselines' oracle/…, random/…, not counts such as failures/…)
    gate_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(self.margin >= 0 and self.tolerance >= 0, "registry.margin/tolerance", "must be >= 0")
        _require(
            bool(self.model_name.strip()), "registry.model_name", "must be a non-empty name (e.g. stvg-r1)"
        )
        _require(bool(self.primary_metric), "registry.primary_metric", "must name a metric (e.g. m_vIoU)")


@dataclass(frozen=True)
class GroundParams:
    """Grounding a raw video with a registered model (``stvg ground``, serving): request defaults and limits.

    Copied into every registered model version, where they are the defaults of the served params schema.
    """

    max_video_s: float = 600.0  # longest video accepted, seconds; a longer one is refused (4xx when served)
    max_new_tokens: int = 64  # answer length cap, tokens (a full answer of the tiny policy: ~47)
    do_sample: bool = False  # greedy unless set
    temperature: float = 1.0  # sampling temperature (only with do_sample)
    seed: int = 0  # generation seed
    cache_videos: int = 16  # prompted videos a server keeps, so a second query on one video skips prompting

    def __post_init__(self) -> None:
        _require(self.max_video_s > 0, "ground.max_video_s", "must be > 0 seconds")
        _require(self.max_new_tokens >= 1, "ground.max_new_tokens", "must be >= 1")
        _require(self.temperature > 0, "ground.temperature", "must be > 0")
        _require(self.cache_videos >= 1, "ground.cache_videos", "must be >= 1")


@dataclass(frozen=True)
class Params:
    """All parameters, one frozen section per stage."""

    seed: int = 0
    data: DataParams = field(default_factory=DataParams)
    download: DownloadParams = field(default_factory=DownloadParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    detector: DetectorParams = field(default_factory=DetectorParams)
    prompt: PromptParams = field(default_factory=PromptParams)
    label: LabelParams = field(default_factory=LabelParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    registry: RegistryParams = field(default_factory=RegistryParams)
    ground: GroundParams = field(default_factory=GroundParams)


# ----------------------------------------------------------------------------------------------- loading


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raises ParamsError naming the key on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found; run from the repository root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"params file {path} is not valid YAML: {exc}") from exc
    return params_from_dict(raw)


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Build ``Params`` from a plain mapping (strict: unknown keys are errors)."""
    return _build(Params, raw, "")


def params_to_dict(params: Any) -> dict[str, Any]:
    """Plain nested dict of a params object (tuples become lists), e.g. for logging."""
    return _plain(dataclasses.asdict(params))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "<root>"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"params: `{where}` must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ParamsError(
            f"params: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys under `{where}` are: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[-1] if errors else f"params: `{key}` has an invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"params: `{key}` must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ParamsError(f"params: `{key}` must be a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"params: `{key}` must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"params: `{key}` must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"params: `{key}` must be a mapping, got {value!r}")
        vt = args[1] if args else Any
        return {str(k): _coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params: `{key}` must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params: `{key}` must be an integer, got {value!r}")
        return value
    if tp is float:
        if _looks_like_number(value):
            raise ParamsError(
                f"params: `{key}` must be a number, got the string {value!r} (YAML 1.1 reads an exponent "
                f"without a dot as text); write {yaml11_float_text(float(value))}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"params: `{key}` must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"params: `{key}` must be a string, got {value!r}")
        return value
    return value


# ----------------------------------------------------------------------------------------------- overrides


def apply_overrides(params_path: str | Path, overrides_path: str | Path) -> list[str]:
    """Write the keys of an overrides file into ``params.yaml`` in place, keeping its comments.

    Validates the merged result first, so a bad override never reaches ``params.yaml``.
    Returns the dotted keys that changed.
    """
    overrides = yaml.safe_load(Path(overrides_path).read_text(encoding="utf-8")) or {}
    return merge_into_params(params_path, overrides)


def merge_into_params(params_path: str | Path, overrides: dict[str, Any]) -> list[str]:
    """Merge nested ``overrides`` into ``params.yaml`` in place, keeping its comments; validated first.

    Returns the dotted keys that changed (nothing is written when none did).
    """
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.representer.add_representer(float, _represent_float)
    params_path = Path(params_path)
    doc = rt.load(params_path.read_text(encoding="utf-8"))
    changed: list[str] = []

    def merge(dst: Any, src: dict[str, Any], prefix: str) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v, f"{prefix}{k}.")
            elif dst.get(k) != v:
                _replace_keeping_comment(dst, k, v)
                changed.append(f"{prefix}{k}")

    merge(doc, overrides, "")
    if not changed:
        return changed
    try:
        plain = yaml.safe_load(_dump(rt, doc))
    except yaml.YAMLError as exc:
        raise ParamsError(
            f"{params_path}: merging {', '.join(changed)} would write YAML that does not parse back "
            f"({exc}); nothing was written: set these keys by hand"
        ) from exc
    params_from_dict(plain)  # validate before writing
    from stvg.io import write_text_atomic

    write_text_atomic(params_path, _dump(rt, doc))
    return changed


def yaml11_float_text(value: float) -> str:
    """``value`` spelled so that YAML 1.1 (PyYAML, which dvc and this module read with) sees a float.

    YAML 1.1 needs a dot in the mantissa and a signed exponent: ``1e-06`` is a string there, so a
    merged ``learning_rate: 1.0e-6`` written back as ruamel's ``1e-06`` would reach AdamW as text.

    >>> [yaml11_float_text(v) for v in (1e-06, 1e20, 0.5, 3.0, float("inf"))]
    ['1.0e-06', '1.0e+20', '0.5', '3.0', '.inf']
    """
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    mantissa, e, exponent = repr(float(value)).partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + e + exponent


def _represent_float(representer: Any, value: float) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:float", yaml11_float_text(value))


def _replace_keeping_comment(mapping: Any, key: str, value: Any) -> None:
    """Set ``mapping[key]`` in a round-trip document, keeping the key's end-of-line comment.

    ruamel keeps the old value's comment slots under the key; those of a block sequence
    (``classes:`` then ``- person``) written back beside a new value break the lines after it
    (``prompt: device: cuda``). The comment is re-attached alone, and a list of scalars is written
    in flow style (``[person]``), as params.yaml spells lists.
    """
    from ruamel.yaml.comments import CommentedSeq

    slots = mapping.ca.items.get(key)
    comment = slots[2] if slots and len(slots) > 2 else None
    if isinstance(value, list) and not any(isinstance(x, dict | list) for x in value):
        value = CommentedSeq(value)
        value.fa.set_flow_style()
    mapping[key] = value
    if comment is None:
        mapping.ca.items.pop(key, None)
    else:
        mapping.ca.items[key] = [None, None, comment, None]


def _dump(rt: Any, doc: Any) -> str:
    import io

    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()
