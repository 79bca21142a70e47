"""The visual prompt: red numeric IDs drawn inside each instance's mask, and the prompted video file.

Style follows the official ``mask2marker.py``: the ID number only, red, Hershey Simplex,
anti-aliased, no background box, font scale ``(font_px / 30) * max(H, W) / font_ref_px`` (20 px at a
336-px reference) and thickness ``max(2, int(2 * scale))``.

Placement (``prompt.render.label_placement``): by default the text is centred on the anchor and kept
inside the frame, so the number sits "at the centre" of the object as the paper says; the official
code passes the anchor to ``cv2.putText`` as the text's bottom-left corner, unclipped (``official``),
which draws the number up and to the right of the centre and lets it leave the frame at the edges.

Anchor (departure from the code, which the paper's "centre" wording does not settle): by default the
peak of the mask's distance transform, i.e. the interior point farthest from the mask border,
which lies inside the mask for any shape (rings, L-shapes, thin bars); ties on the plateau go to
the point nearest the mask centroid so the label does not jump between equally good pixels. The
code's rule (middle row of the vertical extent, mean x of that row's pixels, bounding-box centre
when the row is empty) is ``label_anchor: midrow``; it can land outside concave masks. Anchors are
not smoothed over time: the distance peak is a deterministic function of the mask, so it moves only
as much as the mask does.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from stvg.config import RenderParams, SamplingParams

if TYPE_CHECKING:
    from stvg.prompting.identity import Tracks
    from stvg.prompting.video import FrameSource

ID_COLOR_RGB = (255, 0, 0)
RENDER_CHUNK = 32  # tracked frames decoded and drawn at a time
FONT = cv2.FONT_HERSHEY_SIMPLEX
HERSHEY_PX_AT_SCALE_1 = 30.0  # the official code's divisor: scale = font_px / 30 at the reference size
PLATEAU_FRACTION = 0.9  # distance values >= this x peak count as the peak plateau


def font_scale(height: int, width: int, p: RenderParams) -> float:
    """OpenCV font scale for a frame: ``font_px`` at ``font_ref_px``, linear in the longer side."""
    return (p.font_px / HERSHEY_PX_AT_SCALE_1) * max(height, width) / p.font_ref_px


def font_thickness(scale: float) -> int:
    """Stroke thickness of the official code: ``max(2, int(2 * scale))``."""
    return max(2, int(2 * scale))


def label_anchor(mask: np.ndarray, mode: str = "distance") -> tuple[int, int]:
    """``(x, y)`` pixel where the ID of ``mask`` (bool HxW) is centred; ValueError on an empty mask."""
    box = _mask_box(mask)
    if box is None:
        raise ValueError("cannot place a label on an empty mask")
    x0, y0, x1, y1 = box
    crop = mask[y0 : y1 + 1, x0 : x1 + 1]
    if mode == "midrow":
        cy = (y1 - y0) // 2
        row = np.flatnonzero(crop[cy])
        cx = int(row.mean()) + x0 if row.size else (x0 + x1) // 2
        return cx, cy + y0
    if mode != "distance":
        raise ValueError(f"unknown label anchor mode {mode!r}; use 'distance' or 'midrow'")
    # Distance transform on the tight crop padded by one background pixel: the image border counts
    # as outside, so labels keep away from frame edges too, and the cost scales with the object.
    padded = np.zeros((y1 - y0 + 3, x1 - x0 + 3), np.uint8)
    padded[1:-1, 1:-1] = crop
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)
    m = cv2.moments(padded, binaryImage=True)
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    py, px = np.nonzero(dist >= PLATEAU_FRACTION * float(dist.max()))
    k = int(np.argmin((py - cy) ** 2 + (px - cx) ** 2))
    return int(px[k]) + x0 - 1, int(py[k]) + y0 - 1


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive ``(x0, y0, x1, y1)`` of a mask's pixels, or None when empty (OpenCV, no full scan in Python)."""
    m = mask.view(np.uint8) if mask.dtype == np.bool_ else (mask != 0).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(m))
    if w == 0 or h == 0:
        return None
    return x, y, x + w - 1, y + h - 1


def draw_ids(
    frame_rgb: np.ndarray,
    instances: Mapping[int, np.ndarray],
    p: RenderParams,
    *,
    inplace: bool = False,
) -> np.ndarray:
    """Frame with each instance's ID (key) drawn in red at its mask anchor; empty masks are skipped."""
    out = frame_rgb if inplace else frame_rgb.copy()
    h, w = out.shape[:2]
    scale = font_scale(h, w, p)
    thickness = font_thickness(scale)
    for instance_id, mask in instances.items():
        if mask is None:
            continue
        if mask.shape[:2] != (h, w):
            raise ValueError(f"mask of instance {instance_id} is {mask.shape[:2]}, frame is {(h, w)}")
        if _mask_box(mask) is None:
            continue
        x, y = label_anchor(mask, p.label_anchor)
        text = str(int(instance_id))
        origin = (
            (x, y) if p.label_placement == "official" else _centred_origin(text, x, y, scale, thickness, h, w)
        )
        cv2.putText(out, text, origin, FONT, scale, ID_COLOR_RGB, thickness, cv2.LINE_AA)
    return out


def _centred_origin(
    text: str, x: int, y: int, scale: float, thickness: int, h: int, w: int
) -> tuple[int, int]:
    """``putText`` origin (bottom-left) that centres the text on (x, y), clipped inside the image."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    ox = min(max(x - tw // 2, 0), max(w - tw, 0))
    oy = min(max(y + th // 2, th), max(h - baseline, th))
    return ox, oy


def write_video(
    path: str | os.PathLike[str],
    frames_rgb: Iterable[np.ndarray],
    fps: float,
    size: tuple[int, int] | None = None,
) -> int:
    """Encode RGB frames as mp4v at ``fps``; atomic (temp file, then rename). Returns frames written.

    ``size`` is ``(width, height)``; frames of another size are resized to it. Without it the first
    frame fixes the size. A stream with no frames raises ValueError and writes nothing.
    """
    target = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0 to write {target}, got {fps}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # OpenCV picks the container from the extension, so the temp file keeps the target's suffix.
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=target.suffix or ".mp4", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    writer: cv2.VideoWriter | None = None
    n = 0
    try:
        for frame in frames_rgb:
            if writer is None:
                size = size or (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot open an mp4v writer for {target}")
            if (frame.shape[1], frame.shape[0]) != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            n += 1
        if writer is None:
            raise ValueError(f"no frames to write to {target}")
        writer.release()
        writer = None
        os.replace(tmp, target)
    finally:
        if writer is not None:
            writer.release()
        if tmp.exists():
            tmp.unlink()
    return n


def render_video(
    source: FrameSource,
    tracks: Tracks,
    render: RenderParams,
    sampling: SamplingParams,
    prompted_path: Path | None,
    fps: float,
) -> tuple[dict[str, Any], np.ndarray, int]:
    """Draw IDs on every tracked frame (mp4 at ``prompted_path``) and collect the frames the policy sees.

    Returns the sampling plan (``sampling.json``), the sampled frames with their IDs and the number
    of frames written.
    """
    from stvg.prompting.sampling import plan_sampling

    idx, meta = source.frame_indices, source.meta
    plan = plan_sampling(idx[-1] + 1, meta.fps, meta.width, meta.height, sampling)
    wanted: dict[int, list[int]] = {}  # tracked position -> sample slots showing it
    for slot, native in enumerate(plan.frame_indices):
        wanted.setdefault(max(0, bisect.bisect_right(idx, native) - 1), []).append(slot)
    sampled = np.zeros((plan.n_samples, plan.out_height, plan.out_width, 3), dtype=np.uint8)
    drawn = _drawn_frames(source, tracks, render)

    def frames_out() -> Iterator[np.ndarray]:
        for pos, frame in enumerate(drawn):
            for slot in wanted.get(pos, []):
                sampled[slot] = resize_frame(frame, (plan.out_width, plan.out_height), sampling.resize)
            yield frame

    if prompted_path is not None:
        written = write_video(prompted_path, frames_out(), fps, (meta.width, meta.height))
    else:
        written = sum(1 for _ in frames_out())
    return plan.to_dict(), sampled, written


def resize_frame(frame: np.ndarray, size: tuple[int, int], kernel: str = "area") -> np.ndarray:
    """``frame`` (H, W, 3 uint8) resized to ``size`` = (width, height) with ``prompt.sampling.resize``.

    ``area`` is OpenCV's area filter (the default: sharp IDs when shrinking). ``bicubic`` is the kernel
    qwen-vl-utils applies to decoded videos (torchvision's ``resize``: bicubic with antialiasing on
    float pixels), rounded and clipped back to uint8 because the mask database stores uint8 frames.
    The official pipeline also passes the overlay through an mp4 (mp4v) round trip first; that codec
    loss is not reproduced.
    """
    if kernel == "area":
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    out = torch.nn.functional.interpolate(
        pixels, size=(size[1], size[0]), mode="bicubic", align_corners=False, antialias=True
    )
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _drawn_frames(source: FrameSource, tracks: Tracks, p: RenderParams) -> Iterator[np.ndarray]:
    """Every tracked frame with its instances' IDs drawn, in order."""
    from stvg.prompting.maskdb import decode_mask

    by_pos: dict[int, dict[int, Any]] = {}
    for iid, frames in tracks.items():
        for pos, o in frames.items():
            by_pos.setdefault(pos, {})[iid] = o.payload
    n = len(source.frame_indices)
    for a in range(0, n, RENDER_CHUNK):
        for k, frame in enumerate(source.read(a, min(n, a + RENDER_CHUNK))):
            masks = {i: decode_mask(r) for i, r in by_pos.get(a + k, {}).items()}
            yield draw_ids(frame, masks, p, inplace=True)
