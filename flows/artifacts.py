"""Supporting artifacts (summaries, check reports, previews, plots, predictions): best effort when
MLflow's artifact store fails.

A tracking server proxies artifacts to a store of its own (the team services put it in the same
object store as the DVC remote). When that store is down, the server still records runs, params,
metrics and tags but answers every upload with an error. A run's supporting artifacts are copies of
files DVC already versions, so losing them must not fail the pipeline: the first failed upload is
logged as a warning naming the store and the fix, every later upload to that server in this process
is skipped at once for ``RETRY_AFTER_S`` (the client would otherwise retry each one for the length
of its retry window), and the run is tagged ``artifacts.incomplete`` with the files it lacks
(``artifacts.missing``) and why (``artifacts.error``). The uploads go on failing loudly when the
tracking server itself is unreachable (``flows.outage`` handles that) and with a local store, where a
failed write is a local fault.

The registered model is not a supporting artifact: ``flows.registry`` uploads it strictly, and a model
that cannot be stored is not registered (``ArtifactStoreUnavailable``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow import MlflowClient

log = logging.getLogger(__name__)

INCOMPLETE_TAG = "artifacts.incomplete"
MISSING_TAG = "artifacts.missing"
ERROR_TAG = "artifacts.error"
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value
RETRY_AFTER_S = 300.0  # a long-lived process (the retraining schedule) tries a down store again after this
FIX = "start it (`stvg services up`, or the store the tracking server's --artifacts-destination names)"

_store_down: dict[str, tuple[float, str]] = {}  # tracking URI -> (when, why) its artifact store failed
_missing: dict[str, list[str]] = {}  # run id -> artifact paths not uploaded


class ArtifactStoreUnavailable(RuntimeError):
    """The tracking server's artifact store refused an upload that cannot be skipped (the model)."""

    def __init__(self, uri: str, what: str, cause: BaseException) -> None:
        super().__init__(
            f"{what} could not be uploaded to the artifact store of the MLflow server {uri} "
            f"({type(cause).__name__}: {str(cause)[:300]}); nothing was registered: {FIX}, then re-run"
        )


def upload(client: MlflowClient, run_id: str, path: Path, artifact_path: str | None = None) -> bool:
    """Upload a file or a folder's files into the run's artifacts; False when the store is down."""
    uri = client.tracking_uri
    folder = Path(path).is_dir()  # its files go under artifact_path itself
    name = (
        artifact_path
        if folder and artifact_path
        else "/".join(filter(None, [artifact_path, Path(path).name]))
    )
    if uri in _store_down and time.monotonic() - _store_down[uri][0] < RETRY_AFTER_S:
        _record_missing(client, run_id, name, _store_down[uri][1])
        return False
    try:
        if folder:
            client.log_artifacts(run_id, str(path), artifact_path=artifact_path)
        else:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
    except Exception as exc:
        if not store_failure(uri):
            raise
        reason = f"{type(exc).__name__}: {str(exc)[:500]}"
        _store_down[uri] = (time.monotonic(), reason)
        log.warning(
            "MLflow's artifact store behind %s refused %s (%s); the run goes on without its supporting "
            "artifacts (tagged %s): %s",
            uri, name, reason[:300], INCOMPLETE_TAG, FIX,
        )  # fmt: skip
        _record_missing(client, run_id, name, reason)
        return False
    _store_down.pop(uri, None)
    return True


def store_failure(uri: str) -> bool:
    """Whether a failed upload to ``uri`` is the artifact store's: the tracking server answers."""
    from flows.outage import server_reachable

    return uri.startswith(("http://", "https://")) and server_reachable(uri)


def missing(run_id: str) -> list[str]:
    """The artifacts of ``run_id`` this process could not upload."""
    return list(_missing.get(run_id, []))


def _record_missing(client: MlflowClient, run_id: str, name: str, reason: str) -> None:
    from flows.tracking import log_tags  # tracking's artifact helpers call this module

    names = _missing.setdefault(run_id, [])
    names.append(name)
    listed = f"{len(names)} not uploaded: " + ", ".join(names)
    tags = {INCOMPLETE_TAG: "true", MISSING_TAG: listed[:MAX_TAG_CHARS], ERROR_TAG: reason[:MAX_TAG_CHARS]}
    log_tags(client, run_id, tags)  # one request per skipped upload
