"""Stage `download`: put every source of ``download.sources`` under ``data/<dest>/``.

    stvg download [--params params.yaml] [--data-dir data] [--cache-dir .cache/downloads] [--only NAME]

Per source kind:
- ``http``: download into the cache folder (resumable, checksummed), then extract it into
  ``data/<dest>/`` when ``extract`` is set, else copy the file there;
- ``local``: copy a release the user already has into ``data/<dest>/`` (see ``stvg.data.fetch``);
- ``synthetic``: generate the synthetic benchmark from the ``synthetic`` section.

Each destination appears atomically and records where it came from (``.stvg-source.json``; the
synthetic set's own ``summary.json`` records its params), so a rerun with unchanged sources does
nothing. This stage writes ``data/`` only: it is not a dvc.yaml stage, because ``data/`` is pinned by
``data.dvc`` (the download flow runs ``dvc add data`` after the raw-data check). A failing source is
reported and the others still run; the exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from stvg.config import DownloadSource, Params, load_params, params_to_dict
from stvg.data.fetch import download, extract_archive, is_archive, register_local
from stvg.io import write_json_atomic

log = logging.getLogger(__name__)

SOURCE_MARKER = ".stvg-source.json"


def destination(source: DownloadSource, data_dir: Path) -> Path:
    """``data/<dest>`` (``dest`` defaults to the source's name)."""
    return Path(data_dir) / (source.dest or source.name)


def fetch_source(
    source: DownloadSource,
    params: Params,
    data_dir: Path,
    cache_dir: Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Materialise one source under ``data_dir``; returns a summary (``status`` fetched or up-to-date)."""
    t0 = time.perf_counter()
    dest = destination(source, data_dir)
    if source.kind == "synthetic":
        status = _synthetic(params, dest, progress)
    else:
        provenance = _provenance(source)
        if _read_json(dest / SOURCE_MARKER) == provenance:
            status = "up-to-date"
        else:
            if source.kind == "http":
                _http(source, params, dest, Path(cache_dir), progress)
            elif source.kind == "local":
                register_local(Path(source.path), dest)
            else:  # pragma: no cover - config validates the kind
                raise ValueError(f"download.sources[{source.name}]: unknown kind {source.kind!r}")
            write_json_atomic(dest / SOURCE_MARKER, provenance)
            status = "fetched"
    files = [p for p in dest.rglob("*") if p.is_file()]
    return {
        "name": source.name,
        "kind": source.kind,
        "dest": str(dest),
        "status": status,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _http(source: DownloadSource, params: Params, dest: Path, cache_dir: Path, progress: bool) -> None:
    p = params.download
    name = source.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or source.name
    cached = download(
        source.url,
        cache_dir / source.name / name,
        sha256=source.sha256,
        timeout_s=p.timeout_s,
        chunk_bytes=p.chunk_bytes,
        progress=progress,
    )
    if source.extract:
        if not is_archive(cached):
            raise ValueError(
                f"download.sources[{source.name}]: extract is true but {name} is not a .zip/.tar/.tar.gz "
                "archive; set extract: false"
            )
        extract_archive(cached, dest)
    else:
        register_local(cached, dest)


def _synthetic(params: Params, dest: Path, progress: bool) -> str:
    from stvg.data.synthetic import generate_benchmark

    wanted = json.loads(json.dumps(params_to_dict(params.synthetic)))
    recorded = (_read_json(dest / "summary.json") or {}).get("params")
    if recorded == wanted:
        return "up-to-date"
    generate_benchmark(params.synthetic, dest, progress=progress)
    return "generated"


def _provenance(source: DownloadSource) -> dict[str, Any]:
    """What a destination was made from; a change in any of these re-fetches it."""
    if source.kind == "local":
        return {
            "kind": "local",
            "path": str(Path(source.path).expanduser().resolve()),
            **_fingerprint(source),
        }
    return {"kind": "http", "url": source.url, "sha256": source.sha256.lower(), "extract": source.extract}


def _fingerprint(source: DownloadSource) -> dict[str, int]:
    """Cheap change detector for a local release (file count, total size, newest mtime)."""
    root = Path(source.path).expanduser()
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    stats = [p.stat() for p in files]
    return {
        "n_files": len(stats),
        "n_bytes": sum(s.st_size for s in stats),
        "newest_mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stvg download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--data-dir", default="data", help="raw-data folder pinned by data.dvc")
    parser.add_argument("--cache-dir", default=".cache/downloads", help="where archives are kept for resume")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="only this source (repeatable)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    params = load_params(args.params)
    sources = [s for s in params.download.sources if not args.only or s.name in args.only]
    unknown = sorted(set(args.only) - {s.name for s in params.download.sources})
    if unknown:
        names = ", ".join(s.name for s in params.download.sources)
        print(
            f"stvg download: no source named {', '.join(unknown)} in {args.params}; sources: {names}",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for source in sources:
        try:
            summary = fetch_source(
                source, params, Path(args.data_dir), Path(args.cache_dir), progress=not args.no_progress
            )
        except Exception as exc:  # noqa: BLE001 - any failure is reported and the other sources go on
            failed += 1
            print(f"stvg download: source {source.name!r} failed: {exc}", file=sys.stderr)
            summary = {"name": source.name, "kind": source.kind, "status": "failed", "error": str(exc)}
        print(json.dumps(summary, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
