"""A contiguous GT box tube stored as one array, seen as the ``frame -> xyxy`` mapping Sample promises.

HC-STVG tubes are contiguous runs of hundreds of boxes; a 16,000-entry file holds ~5.6 M of them.
Building a Python dict of tuples per frame costs more than parsing the whole file, so the adapters
keep the ``(n, 4)`` array plus the first frame and expose it read-only through ``Mapping``.
``dict(tube)`` gives a plain dict (e.g. for JSON); ``first_frame`` / ``boxes`` match the metrics'
dense-box fields, so array consumers can skip the per-frame view entirely.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from stvg.records import Box


class BoxTube(Mapping[int, Box]):
    """Read-only ``{frame: (x1, y1, x2, y2)}`` over frames ``first_frame .. first_frame + len - 1``."""

    __slots__ = ("boxes", "first_frame")

    def __init__(self, first_frame: int, boxes: np.ndarray) -> None:
        arr = (
            boxes
            if isinstance(boxes, np.ndarray) and boxes.dtype == np.float64
            else np.asarray(boxes, np.float64)
        )
        if arr.ndim != 2:
            arr = arr.reshape(-1, 4)
        if arr.flags.writeable:
            arr = arr.view()
            arr.flags.writeable = False
        self.first_frame = int(first_frame)
        self.boxes = arr  # (n, 4) xyxy, pixels

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def __getitem__(self, frame: int) -> Box:
        i = int(frame) - self.first_frame
        if not 0 <= i < self.boxes.shape[0]:
            raise KeyError(frame)
        x1, y1, x2, y2 = self.boxes[i].tolist()
        return (x1, y1, x2, y2)

    def __contains__(self, frame: object) -> bool:
        return (
            isinstance(frame, int | np.integer) and 0 <= int(frame) - self.first_frame < self.boxes.shape[0]
        )

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first_frame, self.first_frame + self.boxes.shape[0]))

    def items(self):  # type: ignore[override]
        """(frame, box) pairs, built in one pass over the array."""
        return _TubeItems(self)

    def values(self):  # type: ignore[override]
        return _TubeValues(self)

    def to_dict(self) -> dict[int, Box]:
        """A plain dict copy (JSON-friendly with string keys after ``json.dumps``)."""
        return dict(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BoxTube):
            return self.first_frame == other.first_frame and np.array_equal(self.boxes, other.boxes)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container semantics, like dict

    def __repr__(self) -> str:
        last = self.first_frame + len(self) - 1
        return f"BoxTube(frames {self.first_frame}..{last}, {len(self)} boxes)"

    def __reduce__(self):
        return (BoxTube, (self.first_frame, np.array(self.boxes)))


class _TubeItems:
    """``ItemsView``-like: iterates fast, supports len() and membership."""

    __slots__ = ("_tube",)

    def __init__(self, tube: BoxTube) -> None:
        self._tube = tube

    def __len__(self) -> int:
        return len(self._tube)

    def __iter__(self) -> Iterator[tuple[int, Box]]:
        return zip(iter(self._tube), map(tuple, self._tube.boxes.tolist()))  # type: ignore[arg-type]

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        frame, box = item
        return frame in self._tube and self._tube[frame] == tuple(box)


class _TubeValues:
    __slots__ = ("_tube",)

    def __init__(self, tube: BoxTube) -> None:
        self._tube = tube

    def __len__(self) -> int:
        return len(self._tube)

    def __iter__(self) -> Iterator[Box]:
        return map(tuple, self._tube.boxes.tolist())  # type: ignore[arg-type]
