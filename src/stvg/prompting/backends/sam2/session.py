"""SAM2 behind two small interfaces: a video ``Session`` over one window of frames, and a ``Segmenter``
that turns boxes into masks with the image predictor (the same model and weights).

SAM2's ``init_state`` loads a whole video up front; a session here is opened on frames the backend
already decoded (in memory), so peak host memory follows the window, not the video length. SAM2's
untyped state dict stays inside this module. The model is built once per process and reused for
every window, pass and video (the official code rebuilds it after every pass).

Departures from the official code: frames are resized with OpenCV (bicubic) instead of PIL; the
per-object score is the mean mask probability inside the mask (SAM2's video API yields logits only).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from stvg.prompting.backends.base import FrameMasks
from stvg.records import Box

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class Session(Protocol):
    """A propagation session over one window of frames (between ``start`` and ``reset``)."""

    def start(self, frames: Sequence[np.ndarray], first_frame: int = 0) -> None:
        """Open a session on RGB frames that sit at positions ``first_frame..first_frame+len-1``."""
        ...

    def add_mask(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        """Prompt ``obj_id`` with a mask on ``frame_idx``."""
        ...

    def propagate(self, start: int, n: int, reverse: bool = False) -> Iterator[tuple[int, FrameMasks]]:
        """Masks of every prompted object on ``n`` frames from ``start`` (inclusive), in that order."""
        ...

    def reset(self) -> None:
        """End the session and free its state (the model stays loaded)."""
        ...


class Segmenter(Protocol):
    """Boxes -> masks on one frame (the SAM2 image predictor; a scripted fake in tests)."""

    def masks(self, frame: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """One (H, W) bool mask per box (possibly empty)."""
        ...


@functools.lru_cache(maxsize=2)
def build_predictor(
    cfg: str, checkpoint: str = "", device: str = "cpu", image_size: int = 1024, seed: int = 0
) -> Any:
    """The SAM2 video predictor, built once per (config, checkpoint, device, size, seed).

    Without a checkpoint the weights are random, drawn after seeding torch with ``seed`` so the same
    model comes out in every process (speed tests and CPU tests only).
    """
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(seed)
    overrides = [] if image_size == 1024 else [f"++model.image_size={int(image_size)}"]
    return build_sam2_video_predictor(
        cfg, ckpt_path=checkpoint or None, device=device, hydra_overrides_extra=overrides
    )


def frames_to_tensor(frames: Sequence[np.ndarray], image_size: int) -> Any:
    """RGB uint8 frames -> normalised (T, 3, S, S) float32 CPU tensor, as SAM2's own loader makes."""
    import cv2
    import torch

    out = np.empty((len(frames), 3, image_size, image_size), dtype=np.float32)
    for i, f in enumerate(frames):
        x = cv2.resize(f, (image_size, image_size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        out[i] = ((x - _MEAN) / _STD).transpose(2, 0, 1)
    return torch.from_numpy(out)


def _precision(device: Any) -> Any:
    """bfloat16 autocast on CUDA, as SAM2's own demos run; plain float32 on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _wait_for_device(device: Any) -> None:
    """Wait for the GPU's queued work, so a clock read after it counts that work (CUDA runs async)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Sam2Session:
    """``Session`` over SAM2's video predictor; frame indices are global positions."""

    def __init__(self, predictor: Any, offload_to_cpu: bool = True) -> None:
        self.predictor = predictor
        self.offload = offload_to_cpu
        self.init_seconds = 0.0  # time spent in SAM2's init_state, all sessions together
        self._state: dict[str, Any] | None = None
        self._first = 0
        self._n = 0

    def start(self, frames: Sequence[np.ndarray], first_frame: int = 0) -> None:
        """Open a session on in-memory frames (SAM2's ``init_state`` with our frames instead of a folder)."""
        import sam2.sam2_video_predictor as svp

        if not frames:
            raise ValueError("Sam2Session.start: no frames")
        self.reset()
        h, w = frames[0].shape[:2]
        images = frames_to_tensor(frames, self.predictor.image_size)
        if not self.offload:
            images = images.to(self.predictor.device)

        def loader(**_: Any) -> tuple[Any, int, int]:
            return images, h, w

        original = svp.load_video_frames
        svp.load_video_frames = loader  # init_state reads frames only through this name
        t0 = time.perf_counter()
        try:  # init_state encodes frame 0: under the same precision as every later frame
            with _precision(self.predictor.device):
                self._state = self.predictor.init_state(
                    video_path="<in-memory>",
                    offload_video_to_cpu=self.offload,
                    offload_state_to_cpu=self.offload,
                )
            _wait_for_device(self.predictor.device)  # init_state only queues frame 0's encoding
        finally:
            svp.load_video_frames = original
            self.init_seconds += time.perf_counter() - t0
        self._first, self._n = first_frame, len(frames)

    def _local(self, frame_idx: int) -> int:
        k = frame_idx - self._first
        if not 0 <= k < self._n:
            raise IndexError(
                f"frame {frame_idx} is outside the open window [{self._first}, {self._first + self._n})"
            )
        return k

    def add_mask(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        """Mask prompt: a new instance's image-predictor mask, or a live one's last mask carried over."""
        import torch

        assert self._state is not None, "call start() first"
        with torch.inference_mode(), _precision(self.predictor.device):
            self.predictor.add_new_mask(
                self._state, frame_idx=self._local(frame_idx), obj_id=int(obj_id), mask=mask
            )

    def propagate(self, start: int, n: int, reverse: bool = False) -> Iterator[tuple[int, FrameMasks]]:
        """Masks of all prompted objects on ``n`` frames from ``start`` (backward when ``reverse``)."""
        import torch

        assert self._state is not None, "call start() first"
        if n <= 0:
            return
        if not self._state["obj_ids"]:  # nothing prompted: SAM2 would raise
            step = -1 if reverse else 1
            for k in range(n):
                f = start + step * k
                if 0 <= f - self._first < self._n:
                    yield f, {}
            return
        local = self._local(start)
        if reverse and local == 0:
            # SAM2 skips reverse tracking that starts on the window's first frame; one frame is one
            # frame either way, conditioned on the same prompts, so run it as a forward step.
            reverse, n = False, 1
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            stack.enter_context(_precision(self.predictor.device))
            self.predictor.propagate_in_video_preflight(self._state)  # encodes prompt memories (idempotent)
            self._float_memories()
            gen = self.predictor.propagate_in_video(
                self._state, start_frame_idx=local, max_frame_num_to_track=n - 1, reverse=reverse
            )
            for k, ids, logits in gen:
                self._float_memories()
                probs = torch.sigmoid(logits[:, 0].float()).cpu().numpy()
                out: FrameMasks = {}
                for oid, pr in zip(ids, probs, strict=True):
                    m = pr > 0.5
                    if m.any():
                        out[int(oid)] = (m, float(pr[m].mean()))
                yield self._first + k, out

    def _float_memories(self) -> None:
        """On CPU, keep stored memories float32: SAM2 stores them as bfloat16 for autocast, and without
        autocast a step whose memories are all bfloat16 fails with a dtype mismatch."""
        import torch

        if self._state is None or torch.device(self.predictor.device).type == "cuda":
            return
        for per_obj in self._state["output_dict_per_obj"].values():
            for outputs in per_obj.values():
                for out in outputs.values():
                    feats = out.get("maskmem_features")
                    if feats is not None and feats.dtype == torch.bfloat16:
                        out["maskmem_features"] = feats.float()

    def reset(self) -> None:
        """Drop the session state (frames, memories)."""
        self._state = None


class Sam2Segmenter:
    """``Segmenter`` over SAM2's image predictor on the video predictor's own model (the official
    code's step: each YOLO box -> one mask, then ``add_new_mask``)."""

    def __init__(self, model: Any) -> None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.predictor = SAM2ImagePredictor(model)
        s = int(model.image_size)  # the image predictor hard-codes 1024-px feature sizes
        self.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        self.device = model.device

    def masks(self, frame: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """One bool mask per xyxy box on the RGB ``frame``."""
        import torch

        if not boxes:
            return []
        with torch.inference_mode(), _precision(self.device):
            self.predictor.set_image(np.ascontiguousarray(frame))
            masks, _, _ = self.predictor.predict(box=np.asarray(boxes, np.float32), multimask_output=False)
        masks = np.asarray(masks).reshape(len(boxes), -1, *frame.shape[:2])[:, 0]
        return [m > 0 for m in masks]
