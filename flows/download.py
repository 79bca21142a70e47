"""The download flow: fetch every data source, gate the raw annotations, version ``data/`` with DVC.

    python -m flows.download [--params params.yaml] [--only NAME ...]

One Prefect task per source (with ``download.retries`` retries, only for errors a retry can fix:
network faults and truncated transfers, not a 404, a bad archive or a missing local path) calls the
library directly (``stvg.stages.download.fetch_source``). Then the great-expectations raw suite runs
on every annotation file named in the ``data`` section; a failure stops the flow before anything is
versioned, with a message naming the failed expectations and the offending samples. Last,
``dvc add data`` writes ``data.dvc``, whose md5 is the raw-data version the pipeline logs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import dvc
from stvg.checks.core import CheckFailed, CheckReport, merge_reports
from stvg.config import DownloadSource, Params, load_params

DATA_DIR = "data"
CACHE_DIR = ".cache/downloads"
MAX_LISTED_INVALID = 20  # skipped samples named one by one in the flow log


@dataclass(frozen=True)
class DownloadResult:
    """What the flow produced: the raw-data version (data.dvc md5), per-source summaries, check reports."""

    raw_data_version: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    reports: list[CheckReport] = field(default_factory=list)


def _retry_helps(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient transfer errors only (``DownloadError.retryable``); the rest fail at once."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return bool(getattr(exc, "retryable", False)) or isinstance(exc, ConnectionError | TimeoutError)


@task(name="download-source", task_run_name="download-{source.name}", cache_policy=NO_CACHE)
def fetch_source_task(
    source: DownloadSource, params: Params, data_dir: Path, cache_dir: Path
) -> dict[str, Any]:
    """Materialise one source under data/ (library call, not a subprocess)."""
    from stvg.stages.download import fetch_source

    summary = fetch_source(source, params, data_dir, cache_dir, progress=False)
    get_run_logger().info("source %s: %s (%d files)", source.name, summary["status"], summary["files"])
    return summary


@task(name="check-raw", cache_policy=NO_CACHE)
def check_raw_task(params: Params, data_dir: Path) -> list[CheckReport]:
    """Load every annotation file of the ``data`` section and run the raw suite on each."""
    from stvg.checks.raw import check_invalid_share, check_raw
    from stvg.data.registry import load_samples

    logger = get_run_logger()
    d = params.data
    reports = []
    for split, annotation in (("train", d.train_annotation), ("test", d.test_annotation)):
        loaded = load_samples(
            d.dataset, data_dir / annotation, video_root=data_dir / d.video_root, skip_invalid=d.skip_invalid
        )
        if loaded.invalid:
            logger.warning(
                "%s: %d invalid sample(s) skipped (data.skip_invalid)", annotation, len(loaded.invalid)
            )
            for bad in loaded.invalid[:MAX_LISTED_INVALID]:
                logger.warning("  skipped %s in %s: %s", bad.sample_id, bad.file, bad.reason)
            if len(loaded.invalid) > MAX_LISTED_INVALID:
                logger.warning("  ... and %d more", len(loaded.invalid) - MAX_LISTED_INVALID)
        # A query-only release (e.g. HC-STVG v2's query_v2.json) has no GT span on any sample by design.
        require_gt = any(s.gt_span_s is not None for s in loaded.samples) or not loaded.samples
        report = check_raw(loaded.samples, name=f"raw_{split}", require_gt=require_gt)
        share = check_invalid_share(
            len(loaded.samples), loaded.invalid, d.max_invalid_fraction, name=f"raw_{split}_invalid"
        )
        for r in (report, share):
            logger.info(r.message())
            reports.append(r)
    return reports


@task(name="version-data", cache_policy=NO_CACHE)
def version_data_task(root: Path) -> str:
    """``dvc add data`` (after ``dvc init`` when needed); returns the md5 that data.dvc pins."""
    dvc.ensure_repo(root)
    dvc_file = dvc.add(DATA_DIR, cwd=root)
    return dvc.dvc_file_hash(dvc_file)


@flow(name="download")
def download_flow(params_path: str = "params.yaml", only: list[str] | None = None) -> DownloadResult:
    """Fetch sources -> raw-data gate -> ``dvc add data``; the repository root is params.yaml's folder."""
    logger = get_run_logger()
    params_file = Path(params_path).resolve()
    root = params_file.parent
    params = load_params(params_file)
    data_dir, cache_dir = root / DATA_DIR, root / CACHE_DIR
    sources = [s for s in params.download.sources if not only or s.name in only]

    fetch = fetch_source_task.with_options(
        retries=params.download.retries,
        retry_delay_seconds=params.download.retry_delay_s,
        retry_condition_fn=_retry_helps,
    )
    states = [fetch(source, params, data_dir, cache_dir, return_state=True) for source in sources]
    failed = [(s.name, st) for s, st in zip(sources, states, strict=True) if not st.is_completed()]
    if failed:
        details = "; ".join(f"{name}: {st.result(raise_on_failure=False)}" for name, st in failed)
        raise RuntimeError(f"download failed for {len(failed)} source(s): {details}")
    summaries = [st.result() for st in states]

    reports = check_raw_task(params, data_dir)
    merged = merge_reports("raw", reports)
    if not merged.success:
        raise CheckFailed(merged)

    version = version_data_task(root)
    logger.info("data/ versioned: data.dvc md5 %s", version)
    return DownloadResult(raw_data_version=version, sources=summaries, reports=reports)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these sources")
    args = parser.parse_args(argv)
    try:
        result = download_flow(params_path=args.params, only=args.only)
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure the same way
        print(f"download flow failed: {exc}", file=sys.stderr)
        return 1
    print(f"raw-data version (data.dvc md5): {result.raw_data_version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
