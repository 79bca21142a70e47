"""The mask/box database: per video, the tracked instances (table), summary, sampling and renders.

Layout under the prompt stage's output folder (``root``)::

    index.json                       {"version": 1, "entries": {video_id: {"key": ..., "dir": ...}}}
    videos/<safe id>-<key[:12]>/     one complete entry per video, built in a temp folder and renamed
        table.parquet                one row per (frame, instance): frame, time_s, instance_id,
                                     x1, y1, x2, y2, area, score, rle (COCO RLE as a JSON string)
        summary.json  sampling.json  prompted.mp4  sampled.npz (frames the policy sees, with red IDs)

Entries are content-addressed: ``key`` hashes the video bytes, the output-relevant params, the
model weights and the prompting code, so an unchanged video is never re-prompted and a changed
param, model or code re-prompts all.
Only ``index.json`` says which entries exist; it is rewritten atomically after each finished video,
so a killed run leaves no half entry and the next run resumes. An entry is built in a staging folder
(``staging``: inside the database, or anywhere a worker writes) and moved in by ``commit``; the one
process that commits is the one that writes the index. RLE is pycocotools' COCO RLE.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stvg.io import write_json_atomic

INDEX = "index.json"
TABLE = "table.parquet"
SUMMARY = "summary.json"
SAMPLING = "sampling.json"
PROMPTED = "prompted.mp4"
SAMPLED = "sampled.npz"
TABLE_COLUMNS = ("frame", "time_s", "instance_id", "x1", "y1", "x2", "y2", "area", "score", "rle")
FORMAT_VERSION = 1


class MaskDBError(KeyError):
    """A video is not in the database; the message says how to produce it."""


# ----------------------------------------------------------------------------------------------- RLE


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a bool (H, W) mask, counts as a str (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Mapping[str, Any] | str) -> np.ndarray:
    """Bool (H, W) mask of a COCO RLE (dict or its JSON string)."""
    from pycocotools import mask as mask_utils

    r = json.loads(rle) if isinstance(rle, str) else dict(rle)
    counts = r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"]
    return mask_utils.decode({"size": list(r["size"]), "counts": counts}).astype(bool)


def rle_iou(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Mask IoU of two COCO RLEs without decoding them."""
    from pycocotools import mask as mask_utils

    def raw(r: Mapping[str, Any]) -> dict[str, Any]:
        c = r["counts"]
        return {"size": list(r["size"]), "counts": c.encode("ascii") if isinstance(c, str) else c}

    return float(mask_utils.iou([raw(a)], [raw(b)], [0])[0][0])


# ----------------------------------------------------------------------------------------------- keys


def entry_key(video_hash: str, params: Mapping[str, Any], weights: Mapping[str, str], code: str) -> str:
    """Content address of one entry: video bytes + output-relevant params + model weights + code hashes."""
    blob = json.dumps(
        {"v": FORMAT_VERSION, "video": video_hash, "params": params, "weights": weights, "code": code},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def safe_name(video_id: str) -> str:
    """Folder-safe form of a video id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._")[:80] or "video"


# ----------------------------------------------------------------------------------------------- database


class MaskDB:
    """Read (and, for the prompt stage, write) the prompted-video database at ``root``."""

    def __init__(self, root: str | Path, cache_size: int = 8) -> None:
        self.root = Path(root)
        self._index: dict[str, dict[str, str]] | None = None
        self._tables: OrderedDict[str, pd.DataFrame] = OrderedDict()
        self._cache_size = cache_size

    # -- index ---------------------------------------------------------------------------------------

    @property
    def index(self) -> dict[str, dict[str, str]]:
        if self._index is None:
            path = self.root / INDEX
            self._index = json.loads(path.read_text(encoding="utf-8"))["entries"] if path.is_file() else {}
        return self._index

    def _save_index(self) -> None:
        write_json_atomic(self.root / INDEX, {"version": FORMAT_VERSION, "entries": self.index})

    def video_ids(self) -> list[str]:
        """Video ids with a complete entry, sorted."""
        return sorted(self.index)

    def has(self, video_id: str) -> bool:
        """True when the video has a complete entry."""
        return video_id in self.index

    def key(self, video_id: str) -> str | None:
        """The content key of the video's entry (None if absent)."""
        e = self.index.get(video_id)
        return e["key"] if e else None

    def entry_dir(self, video_id: str) -> Path:
        """Folder of the video's entry."""
        e = self.index.get(video_id)
        if e is None:
            raise MaskDBError(
                f"video {video_id!r} is not in the mask database at {self.root}; "
                "run `stvg prompt` (or `dvc repro prompt`) over a data set that contains it"
            )
        return self.root / e["dir"]

    # -- reading -------------------------------------------------------------------------------------

    def table(self, video_id: str) -> pd.DataFrame:
        """One row per (tracked frame, instance); see the module docstring for the columns."""
        if video_id in self._tables:
            self._tables.move_to_end(video_id)
            return self._tables[video_id]
        df = pd.read_parquet(self.entry_dir(video_id) / TABLE)
        self._tables[video_id] = df
        while len(self._tables) > self._cache_size:
            self._tables.popitem(last=False)
        return df

    def summary(self, video_id: str) -> dict[str, Any]:
        """Instances, repairs, churn, counts, native fps, n_frames, width, height (no timings)."""
        return json.loads((self.entry_dir(video_id) / SUMMARY).read_text(encoding="utf-8"))

    def sampling(self, video_id: str) -> dict[str, Any]:
        """The exact frames (indices and seconds) and size the policy sees."""
        return json.loads((self.entry_dir(video_id) / SAMPLING).read_text(encoding="utf-8"))

    def instance_ids(self, video_id: str) -> list[int]:
        """Instance ids of the video (1..K)."""
        return sorted(int(i) for i in self.table(video_id)["instance_id"].unique())

    def boxes_by_frame(self, video_id: str) -> dict[int, dict[int, tuple[float, float, float, float]]]:
        """frame -> {instance_id: xyxy}."""
        out: dict[int, dict[int, tuple[float, float, float, float]]] = {}
        df = self.table(video_id)
        for f, i, x1, y1, x2, y2 in zip(df.frame, df.instance_id, df.x1, df.y1, df.x2, df.y2, strict=True):
            out.setdefault(int(f), {})[int(i)] = (float(x1), float(y1), float(x2), float(y2))
        return out

    def tube(
        self, video_id: str, instance_id: int, start_s: float | None = None, end_s: float | None = None
    ) -> dict[int, tuple[float, float, float, float]]:
        """frame -> xyxy of one instance over the tracked frames with ``start_s <= time_s <= end_s``."""
        df = self.table(video_id)
        sel = df[df.instance_id == int(instance_id)]
        if start_s is not None:
            sel = sel[sel.time_s >= start_s]
        if end_s is not None:
            sel = sel[sel.time_s <= end_s]
        return {
            int(f): (float(a), float(b), float(c), float(d))
            for f, a, b, c, d in zip(sel.frame, sel.x1, sel.y1, sel.x2, sel.y2, strict=True)
        }

    def mask(self, video_id: str, frame: int, instance_id: int) -> np.ndarray | None:
        """Bool (H, W) mask of one instance on one frame, None when it is not there."""
        df = self.table(video_id)
        row = df[(df.frame == int(frame)) & (df.instance_id == int(instance_id))]
        return decode_mask(row.rle.iloc[0]) if len(row) else None

    def sampled_frames(self, video_id: str) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB: the prompted frames the policy sees."""
        with np.load(self.entry_dir(video_id) / SAMPLED) as z:
            return z["frames"]

    def prompted_video_path(self, video_id: str) -> Path:
        """The prompted mp4 (red IDs on every tracked frame)."""
        return self.entry_dir(video_id) / PROMPTED

    # -- writing (the prompt stage) ------------------------------------------------------------------

    def staging(self, key: str, where: Path | None = None) -> Path:
        """A new empty folder to build an entry in (``where``: any folder; default: inside the database).

        Building in a staging folder and ``commit``-ting it is what makes an entry complete or absent.
        """
        where = where or self.root / "videos"
        where.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".partial-{key[:12]}-", dir=where))

    def commit(self, video_id: str, key: str, staged: Path) -> Path:
        """Move a complete staged entry in, index it atomically and drop the entry it replaces."""
        name = f"{safe_name(video_id)}-{key[:12]}"
        final = self.root / "videos" / name
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, final)  # a rename on the same filesystem
        old = self.index.get(video_id)
        self.index[video_id] = {"key": key, "dir": f"videos/{name}"}
        self._save_index()
        self._tables.pop(video_id, None)
        if old and old["dir"] != f"videos/{name}":
            shutil.rmtree(self.root / old["dir"], ignore_errors=True)
        return final

    @contextlib.contextmanager
    def entry(self, video_id: str, key: str) -> Iterator[Path]:
        """Build a video's entry in a staging folder; on success it replaces any old entry and is indexed."""
        staged = self.staging(key)
        try:
            yield staged
            self.commit(video_id, key, staged)
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)

    def prune(self, keep: set[str] | None = None) -> list[str]:
        """Drop index entries not in ``keep`` and every folder no entry points to; returns dropped ids."""
        dropped = sorted(v for v in self.index if keep is not None and v not in keep)
        for v in dropped:
            del self.index[v]
        if dropped:
            self._save_index()
        live = {e["dir"] for e in self.index.values()}
        videos = self.root / "videos"
        if videos.is_dir():
            for d in videos.iterdir():
                if f"videos/{d.name}" not in live:
                    shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink()
        return dropped


def write_entry(
    folder: Path,
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    sampling: Mapping[str, Any],
    sampled_frames: np.ndarray,
) -> None:
    """Write the table, summary, sampling and sampled frames of one entry into its (temp) folder."""
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"mask table lacks columns {missing}")
    table.loc[:, list(TABLE_COLUMNS)].to_parquet(folder / TABLE, index=False)
    write_json_atomic(folder / SUMMARY, dict(summary))
    write_json_atomic(folder / SAMPLING, dict(sampling))
    write_npz(folder / SAMPLED, frames=np.asarray(sampled_frames, dtype=np.uint8))


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed``'s format (``np.load`` reads it) with the same bytes on every Python.

    numpy streams each member with ``force_zip64``, whose headers differ between Python patch
    releases: 3.11.2 and 3.11.7 wrote different files for the same frames, and so different prompted
    data versions. Here each member is written whole, with a fixed date, so the headers depend on the
    sizes alone and the deflate stream (zlib's default level) on the bytes alone.
    """
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            archive.writestr(member, buffer.getvalue())
