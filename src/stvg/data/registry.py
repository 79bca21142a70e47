"""One entry point for every data set: ``load_samples(FORMAT, annotation)`` -> ``LoadResult``.

FORMAT names the release format, not the file: ``hcstvg-v2`` reads both ``val_v2.json`` and the
query-only ``query_v2.json``; ``synthetic`` is ``hcstvg-v2`` plus the masks file written beside it.
Format-specific options pass through ``**options`` (see each adapter).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stvg.data.common import LoadResult
from stvg.data.errors import AnnotationError, InvalidSample

if TYPE_CHECKING:
    from stvg.config import DataParams

FORMATS = ("hcstvg-v1", "hcstvg-v2", "vidstg", "mevis", "charades-sta", "st-align", "synthetic")


def _hcstvg(version: str) -> Callable[..., LoadResult]:
    def load(path: Path, **kw: Any) -> LoadResult:
        from stvg.data.hcstvg import load_hcstvg

        return load_hcstvg(path, version=version, **kw)

    return load


def _synthetic(path: Path, **kw: Any) -> LoadResult:
    from stvg.data.hcstvg import hcstvg_masks_beside, load_hcstvg

    kw.setdefault("masks", hcstvg_masks_beside(path))
    return load_hcstvg(path, version="v2", dataset="synthetic", **kw)


def _vidstg(path: Path, **kw: Any) -> LoadResult:
    from stvg.data.vidstg import load_vidstg

    return load_vidstg(path, **kw)


def _mevis(path: Path, **kw: Any) -> LoadResult:
    from stvg.data.mevis import load_mevis

    return load_mevis(path, **kw)


def _charades(path: Path, **kw: Any) -> LoadResult:
    from stvg.data.charades import load_charades

    return load_charades(path, **kw)


def _st_align(path: Path, **kw: Any) -> LoadResult:
    from stvg.data.st_align import load_st_align

    return load_st_align(path, **kw)


_LOADERS: dict[str, Callable[..., LoadResult]] = {
    "hcstvg-v1": _hcstvg("v1"),
    "hcstvg-v2": _hcstvg("v2"),
    "vidstg": _vidstg,
    "mevis": _mevis,
    "charades-sta": _charades,
    "st-align": _st_align,
    "synthetic": _synthetic,
}


def load_samples(
    fmt: str,
    annotation: str | Path,
    *,
    video_root: str | Path | None = None,
    skip_invalid: bool = False,
    **options: Any,
) -> LoadResult:
    """Read one annotation file of data set format ``fmt`` into ``Sample`` records.

    With ``video_root``, each sample's video file must exist there (its path becomes ``Sample.video``).
    A bad sample raises ``AnnotationError`` naming file and sample; with ``skip_invalid`` it is dropped
    and listed in ``LoadResult.invalid`` instead. A malformed file always raises.
    """
    if fmt not in _LOADERS:
        raise ValueError(f"unknown data set format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _LOADERS[fmt](Path(annotation), video_root=video_root, skip_invalid=skip_invalid, **options)


def load_split(
    params: DataParams,
    data_root: str | Path,
    split: Literal["train", "test"],
    *,
    with_videos: bool = True,
) -> LoadResult:
    """Load the ``data`` section's train or test annotation (paths relative to ``data_root``).

    Applies ``skip_invalid``, the format options (``clip_boxes``, ``vidor_root``, ``max_entries``) and
    ``max_videos`` (the first N videos in file order). ``with_videos=False`` skips the video check.
    """
    root = Path(data_root)
    annotation = root / (params.train_annotation if split == "train" else params.test_annotation)
    options: dict[str, Any] = {}
    if params.dataset in ("hcstvg-v1", "hcstvg-v2", "synthetic", "vidstg", "st-align"):
        options["clip_boxes"] = params.clip_boxes
    if params.dataset == "vidstg" and params.vidor_root:
        options["vidor_root"] = root / params.vidor_root
    if params.dataset == "st-align" and params.max_entries:
        options["max_entries"] = params.max_entries
    video_root = root / params.video_root if with_videos and params.video_root else None
    result = load_samples(
        params.dataset, annotation, video_root=video_root, skip_invalid=params.skip_invalid, **options
    )
    if params.max_videos:
        keep: dict[str, None] = {}
        for s in result.samples:
            if len(keep) < params.max_videos:
                keep.setdefault(s.video_id, None)
        result = LoadResult([s for s in result.samples if s.video_id in keep], result.invalid)
    return result


def dataset_stats(fmt: str, path: str | Path, **options: Any) -> dict[str, Any]:
    """Counts for ``stvg data stats``: samples, videos, invalid (+ declarative/interrogative for VidSTG),
    and ``invalid_entries``: every invalid entry with its reason, in file order.

    Invalid samples are counted and named, not fatal, so the stats describe any readable file.
    """
    result = load_samples(fmt, path, skip_invalid=True, **options)
    stats: dict[str, Any] = {
        "samples": len(result.samples),
        "videos": len({s.video_id for s in result.samples}),
        "invalid": len(result.invalid),
        "invalid_entries": [{"sample_id": bad.sample_id, "reason": bad.reason} for bad in result.invalid],
    }
    if fmt == "vidstg":
        for kind in ("declarative", "interrogative"):
            stats[kind] = sum(1 for s in result.samples if s.sentence_type == kind)
    return stats


__all__ = [
    "FORMATS",
    "AnnotationError",
    "InvalidSample",
    "LoadResult",
    "dataset_stats",
    "load_samples",
    "load_split",
]
