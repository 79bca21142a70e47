"""Registry of the real checkpoints the paper setting uses, fetched only by an explicit step.

Nothing in the pipeline downloads weights while it runs: a stage is given a local path, or a
registered name that ``resolve_weights`` finds in the weights folder (``detector.weights``,
``prompt.sam2.checkpoint``), and a missing file is an error naming ``stvg weights fetch`` (the explicit
download step) as the fix. ``adopt_weights`` (``stvg weights fetch NAME --from PATH``) copies a file
obtained elsewhere (a host without network) to the same place, verified the same way.

Checksums: the upstream projects publish no SHA-256 for these files, and none could be computed
here (no access to the hosts), so ``sha256`` is empty and ``size_bytes`` records the expected size
where known (approximate sizes are marked as such). ``fetch_weights`` records the SHA-256 of what it
downloaded beside the file (``<file>.sha256``, sha256sum format) and logs it; pin it with ``pin=`` (or
in the registry) to verify every later fetch. A checkpoint the pipeline is *given*
(``detector.weights``) must match the pin in params (``detector.weights_sha256``, see
``check_pinned``): a pickle checkpoint is code as much as data, so the version in git names its bytes.

The official STVG-R1 code loads ``yolov12x.pt`` (the YOLOv12 authors' release, an Ultralytics fork);
``yolo12x`` is Ultralytics' own build of the same architecture, which the pinned ultralytics loads
without the fork's modules, so it is the default detector checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SAM2_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
PIN_SUFFIX = ".sha256"  # the record `fetch_weights` writes beside a checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """One released checkpoint: where it lives, what it is, and how to verify it."""

    name: str
    url: str
    filename: str
    kind: str  # "yolo" | "sam2"
    sha256: str = ""  # empty: not published upstream (see module docstring)
    size_bytes: int = 0  # 0: unknown
    config: str = ""  # SAM2 config the checkpoint belongs to
    note: str = ""


REGISTRY: dict[str, Checkpoint] = {
    c.name: c
    for c in (
        Checkpoint(
            name="yolo12x",
            url="https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo12x.pt",
            filename="yolo12x.pt",
            kind="yolo",
            note="Ultralytics YOLO12-x, COCO 80 classes; default stand-in for the paper's YOLOv12-x (~119 MB)",
        ),
        Checkpoint(
            name="yolov12x",
            url="https://github.com/sunsmarterjie/yolov12/releases/download/v1.0/yolov12x.pt",
            filename="yolov12x.pt",
            kind="yolo",
            note="YOLOv12 authors' release, the file the official STVG-R1 code loads; may need their fork",
        ),
        Checkpoint(
            name="sam2.1_hiera_tiny",
            url=f"{SAM2_BASE_URL}/sam2.1_hiera_tiny.pt",
            filename="sam2.1_hiera_tiny.pt",
            kind="sam2",
            config="configs/sam2.1/sam2.1_hiera_t.yaml",
            note="~156 MB",
        ),
        Checkpoint(
            name="sam2.1_hiera_small",
            url=f"{SAM2_BASE_URL}/sam2.1_hiera_small.pt",
            filename="sam2.1_hiera_small.pt",
            kind="sam2",
            config="configs/sam2.1/sam2.1_hiera_s.yaml",
            note="~184 MB",
        ),
        Checkpoint(
            name="sam2.1_hiera_base_plus",
            url=f"{SAM2_BASE_URL}/sam2.1_hiera_base_plus.pt",
            filename="sam2.1_hiera_base_plus.pt",
            kind="sam2",
            config="configs/sam2.1/sam2.1_hiera_b+.yaml",
            note="~324 MB",
        ),
        Checkpoint(
            name="sam2.1_hiera_large",
            url=f"{SAM2_BASE_URL}/sam2.1_hiera_large.pt",
            filename="sam2.1_hiera_large.pt",
            kind="sam2",
            config="configs/sam2.1/sam2.1_hiera_l.yaml",
            note="~898 MB; the paper's segmenter",
        ),
    )
}


def checkpoint(name: str) -> Checkpoint:
    """The registry entry for ``name``; KeyError lists the registered names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no checkpoint named {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None


def sha256_of(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def fetch_weights(name: str, dest_dir: str | Path, *, pin: str = "", progress: bool = True) -> Path:
    """Download checkpoint ``name`` into ``dest_dir`` (the explicit fetch step); returns its path.

    Verified against ``pin`` or the registry's SHA-256 when either is set; an existing verified
    file is not downloaded again.
    """
    from stvg.data.fetch import download

    entry = checkpoint(name)
    dest = Path(dest_dir) / entry.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = (pin or entry.sha256).lower()
    path = download(entry.url, dest, sha256=expected, progress=progress)
    digest = expected or sha256_of(path)
    record = path.with_name(path.name + PIN_SUFFIX)
    record.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    log.info(
        "%s: sha256 %s (recorded in %s; pin it in params.yaml to verify later runs)", name, digest, record
    )
    return path


def adopt_weights(name: str, source: str | Path, dest_dir: str | Path, *, pin: str = "") -> tuple[Path, str]:
    """Copy a local file as checkpoint ``name`` into ``dest_dir`` (atomically); returns (path, sha256).

    Verified against ``pin`` or the registry's SHA-256 when either is set: a mismatch raises
    ``ValueError`` and leaves nothing behind.
    """
    import shutil

    from stvg.io import atomic_path

    entry = checkpoint(name)
    src = Path(source)
    if not src.is_file():
        raise FileNotFoundError(f"--from {src}: no such file; give the downloaded {entry.filename}")
    digest = sha256_of(src)
    expected = (pin or entry.sha256).lower()
    if expected and digest != expected:
        raise ValueError(
            f"{src}: sha256 {digest} differs from the expected {expected}; "
            f"the file is not the {name} checkpoint (or the pin is wrong)"
        )
    dest = Path(dest_dir) / entry.filename
    if dest.resolve() != src.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    dest.with_name(dest.name + PIN_SUFFIX).write_text(f"{digest}  {dest.name}\n", encoding="utf-8")
    log.info("%s: adopted %s as %s (sha256 %s)", name, src, dest, digest)
    return dest, digest


class WeightsPinError(ValueError):
    """A given checkpoint has no sha256 pin, or its bytes do not match the pin; final, never retried."""


def check_pinned(path: str | Path, sha256: str, *, allow_unpinned: bool, param: str) -> str:
    """The checkpoint's SHA-256, after checking it against its pin ``sha256`` (the params key ``param``).

    An unpinned checkpoint is refused unless ``allow_unpinned``: the pipeline would otherwise version
    whatever file happens to sit at that path, and unpickle it.
    """
    actual = sha256_of(path)
    if sha256 and actual != sha256.lower():
        raise WeightsPinError(
            f"{path}: sha256 {actual} does not match the pin {param}: {sha256.lower()}; the file is not the "
            "one pinned (changed, truncated or replaced). Fetch it again (stvg weights fetch) or fix the pin"
        )
    if not sha256 and not allow_unpinned:
        recorded = Path(str(path) + PIN_SUFFIX)
        where = f" ({recorded} holds the sha256 recorded when it was fetched)" if recorded.is_file() else ""
        raise WeightsPinError(
            f"{path} has no sha256 pin{where}: set {param}: {actual} in params.yaml once you trust this file, "
            f"or set {param.rsplit('.', 1)[0]}.allow_unpinned_weights: true to load it unverified"
        )
    return actual


def resolve_weights(spec: str | Path, weights_dir: str | Path = "weights") -> Path:
    """A local checkpoint from a path or a registered name found in ``weights_dir``; never downloads."""
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec)
    if name in REGISTRY:
        local = Path(weights_dir) / REGISTRY[name].filename
        if local.is_file():
            return local
        raise FileNotFoundError(
            f"checkpoint {name!r} is not in {weights_dir}/; fetch it first with `stvg weights fetch {name}` "
            f"(or `--from PATH` for a local copy), or point to a local file"
        )
    hint = next(
        (f" (`stvg weights fetch {c.name}`)" for c in REGISTRY.values() if c.filename == path.name), ""
    )
    raise FileNotFoundError(
        f"weights {spec} not found{hint}: give an existing file or a registered name "
        f"({', '.join(sorted(REGISTRY))})"
    )
