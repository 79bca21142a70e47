"""``stvg serve``: the champion over HTTP, following the registry when the alias moves.

    stvg serve [--model models:/stvg-r1@champion] [--host 127.0.0.1] [--port 8000]
               [--public-url URL] [--poll-s SECONDS] [--video-root DIR] [--max-video-s S]

MLflow's own scoring app (``mlflow.pyfunc.scoring_server.init``, what ``mlflow models serve`` runs:
the same ``POST /invocations`` JSON, ``/ping``, ``/health``, ``/version``) in front of a holder of the
version the alias points to, plus two routes:

- ``POST /registry-webhook``: MLflow's registry webhook (``model_version_alias.created``). The
  HMAC signature is checked (``X-MLflow-Signature``, secret ``STVG_WEBHOOK_SECRET`` or a random one),
  deliveries older than ``WEBHOOK_MAX_AGE_S`` are refused, and an event for this model and alias
  loads that version in the background and swaps it in; until it is ready the old version answers.
- ``GET /model``: the name, alias and version serving, a reload under way, the last reload error.

``--model`` may also be ``models:/NAME/VERSION`` or a local folder (an MLflow model, or a grounding
bundle): those are served as they are, without following anything. Every response row says which
version answered (``model_version``). Against an MLflow server
(``MLFLOW_TRACKING_URI=http://…``) the command registers that webhook itself, pointing at
``--public-url`` (default ``http://HOST:PORT``), and removes it on exit; a receiver on a private
address needs ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true`` on the MLflow server. The project's local
sqlite store has no server to send webhooks, so there the alias is polled every ``--poll-s`` seconds
instead (set ``--poll-s`` with a server too, as a fallback for a missed delivery). Unknown request
params are refused with a 400 (plain ``mlflow models serve`` drops them with a warning).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import Request  # module level: FastAPI resolves the route annotations from here
from fastapi.responses import JSONResponse

from stvg.env import configure_environment

log = logging.getLogger("stvg.serve")

WEBHOOK_PATH = "/registry-webhook"
WEBHOOK_EVENT = "model_version_alias.created"
WEBHOOK_MAX_AGE_S = 300  # older deliveries are refused (replays)
SECRET_ENV = "STVG_WEBHOOK_SECRET"
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")


class ServedModel:
    """The model version answering now; ``reload`` loads another and swaps it in when it is ready.

    Exposes what MLflow's scoring app reads of a model (``metadata``, ``predict``), so the app never
    holds a stale reference: every request reads the current version once, at its start.
    """

    def __init__(self, name: str, alias: str, load: Any) -> None:
        self.name, self.alias, self._load = name, alias, load
        self.version = ""
        self.model: Any = None
        self.loading = ""
        self.last_error = ""
        self._lock = threading.Lock()

    @property
    def metadata(self) -> Any:
        return self.model.metadata

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        from flows.serving import PARAM_NAMES, bad_input

        unknown = sorted(set(params or {}) - set(PARAM_NAMES))
        if unknown:
            raise bad_input(f"unknown param(s) {unknown}; this model takes {list(PARAM_NAMES)}")
        return self.model.predict(data, params=params)

    def reload(self, version: str) -> bool:
        """Load ``version`` and make it the serving one; False (old one kept) when loading fails."""
        with self._lock:
            if version == self.version or version == self.loading:
                return False
            self.loading = version
        try:
            model = self._load(version)
        except Exception as exc:  # noqa: BLE001 - keep serving the old version; /model shows why
            log.error(
                "could not load %s version %s; still serving %s: %s", self.name, version, self.version, exc
            )
            with self._lock:
                self.loading, self.last_error = "", f"version {version}: {exc}"
            return False
        with self._lock:
            self.model, self.version, self.loading, self.last_error = model, version, "", ""
        log.info("now serving %s version %s (alias %s)", self.name, version, self.alias)
        return True

    def reload_in_background(self, version: str) -> None:
        threading.Thread(target=self.reload, args=(version,), name=f"reload-v{version}", daemon=True).start()

    def status(self) -> dict[str, str]:
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "loading": self.loading,
            "last_error": self.last_error,
        }


def verify_signature(secret: str, headers: Any, body: bytes, now: float | None = None) -> str:
    """ "" when an MLflow webhook delivery is authentic and fresh, else the reason it is not."""
    signature = headers.get("x-mlflow-signature", "")
    delivery, stamp = headers.get("x-mlflow-delivery-id", ""), headers.get("x-mlflow-timestamp", "")
    if not (signature and delivery and stamp):
        return "unsigned delivery (no X-MLflow-Signature / Delivery-Id / Timestamp)"
    try:
        age = (time.time() if now is None else now) - int(stamp)
    except ValueError:
        return f"bad timestamp {stamp!r}"
    if abs(age) > WEBHOOK_MAX_AGE_S:
        return f"delivery is {age:.0f} s old (limit {WEBHOOK_MAX_AGE_S} s)"
    signed = f"{delivery}.{stamp}.{body.decode('utf-8', 'replace')}".encode()
    expected = "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return "" if hmac.compare_digest(expected, signature) else "signature mismatch"


def build_app(served: ServedModel, secret: str) -> Any:
    """MLflow's scoring app over ``served``, plus the webhook receiver and ``/model``."""
    from mlflow.pyfunc import scoring_server

    app = scoring_server.init(served)

    @app.get("/model")
    async def model_status() -> JSONResponse:
        return JSONResponse(served.status())

    @app.post(WEBHOOK_PATH)
    async def registry_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        problem = verify_signature(secret, request.headers, body)
        if problem:
            log.warning("webhook delivery refused: %s", problem)
            return JSONResponse({"error": problem}, status_code=401)
        event = json.loads(body)
        data = event.get("data") or {}
        kind = f"{event.get('entity')}.{event.get('action')}"
        if kind != WEBHOOK_EVENT or (data.get("name"), data.get("alias")) != (served.name, served.alias):
            return JSONResponse({"ignored": f"{kind} for {data.get('name')}@{data.get('alias')}"})
        served.reload_in_background(str(data["version"]))
        return JSONResponse({"reloading": str(data["version"])})

    return app


def register_webhook(client: Any, name: str, url: str, secret: str) -> str:
    """Create (or re-point) this server's alias webhook; returns its id."""
    for hook in client.list_webhooks():
        if hook.name == name:
            client.update_webhook(
                hook.webhook_id, url=url, events=[WEBHOOK_EVENT], secret=secret, status="ACTIVE"
            )
            return hook.webhook_id
    return client.create_webhook(name=name, url=url, events=[WEBHOOK_EVENT], secret=secret).webhook_id


def poll_alias(served: ServedModel, client: Any, every_s: float, stop: threading.Event) -> None:
    """Reload whenever the alias points at another version (the local store sends no webhooks)."""
    while not stop.wait(every_s):
        try:
            version = str(client.get_model_version_by_alias(served.name, served.alias).version)
        except Exception as exc:  # noqa: BLE001 - the registry may be briefly unreachable; try again later
            log.warning("cannot read %s@%s: %s", served.name, served.alias, exc)
            continue
        if version != served.version:
            served.reload(version)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stvg serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="models:/stvg-r1@champion",
        help="models:/NAME@ALIAS (followed), models:/NAME/N or a folder",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--public-url", default="", help="URL the MLflow server reaches this one at")
    parser.add_argument(
        "--poll-s", type=float, default=0.0, help="poll the alias every N s (0: webhook only)"
    )
    parser.add_argument("--video-root", default="", help="folder requests may name video paths in")
    parser.add_argument("--max-video-s", type=float, default=0.0, help="longest video (0: the model's)")
    parser.add_argument("--device", default="", help="torch device (default: cuda when available)")
    parser.add_argument("--timeout-s", type=int, default=600, help="longest request, seconds")
    return parser.parse_args(argv)


def open_model(model: str, client: Any, config: dict[str, Any]) -> tuple[ServedModel, str]:
    """The holder for ``--model`` and the version to load first.

    ``models:/NAME@ALIAS`` is followed; ``models:/NAME/VERSION`` and a local folder (an MLflow model,
    or a bare grounding bundle) are served as they are.
    """
    import mlflow

    from flows.lineage import resolve_model_uri

    def registered(name: str) -> Any:
        def load(version: str) -> Any:
            uri = f"models:/{name}/{version}"
            return mlflow.pyfunc.load_model(uri, model_config=config | {"model_version": version})

        return load

    match = _ALIAS_URI.match(model)
    if match:
        version = client.get_model_version_by_alias(match["name"], match["alias"]).version
        return ServedModel(match["name"], match["alias"], registered(match["name"])), str(version)
    if model.startswith("models:/"):
        found = resolve_model_uri(client, model)
        return ServedModel(found.name, "", registered(found.name)), str(found.version)
    folder = local_pyfunc(Path(model).expanduser())
    return ServedModel(
        str(model), "", lambda _: mlflow.pyfunc.load_model(str(folder), model_config=config)
    ), ""


def local_pyfunc(folder: Path) -> Path:
    """An MLflow model folder for ``folder`` (itself, or a pyfunc wrapped around a bare bundle)."""
    import tempfile

    from flows.serving import save_grounding_model
    from stvg.grounding.bundle import is_bundle, load_bundle

    if (folder / "MLmodel").is_file():
        return folder
    if not is_bundle(folder):
        raise FileNotFoundError(f"{folder} is neither an MLflow model (MLmodel) nor a grounding bundle")
    wrapped = Path(tempfile.mkdtemp(prefix="stvg-serve-")) / "model"
    save_grounding_model(wrapped, folder, load_bundle(folder).ground, pip_requirements=[])
    return wrapped


def follow_registry(served: ServedModel, client: Any, args: argparse.Namespace, secret: str) -> Any:
    """Subscribe to alias moves (webhook on a server, else polling); returns the clean-up to run."""
    hook, stop = "", threading.Event()
    if client.tracking_uri.startswith(("http://", "https://")):
        url = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/") + WEBHOOK_PATH
        hook = register_webhook(client, f"stvg-serve-{served.name}-{served.alias}-{args.port}", url, secret)
        log.info("registry webhook %s -> %s", hook, url)
    elif not args.poll_s:
        args.poll_s = 10.0
        log.info("%s sends no webhooks (no MLflow server); polling the alias every 10 s", client.tracking_uri)
    if args.poll_s:
        threading.Thread(target=poll_alias, args=(served, client, args.poll_s, stop), daemon=True).start()

    def clean_up() -> None:
        stop.set()
        if hook:
            client.delete_webhook(hook)
            log.info("registry webhook %s removed", hook)

    return clean_up


def main(argv: list[str] | None = None) -> int:
    import mlflow
    import uvicorn
    from mlflow import MlflowClient

    from flows.serving import require_registry
    from flows.tracking import tracking_uri

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = configure_environment()
    if args.model.startswith("models:/"):
        try:
            require_registry(tracking_uri(root))  # before a client, which would create an empty store
        except FileNotFoundError as exc:
            print(f"stvg serve: {exc}")
            return 2
    client = MlflowClient(tracking_uri=tracking_uri(root))
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    config = {"video_root": args.video_root, "max_video_s": args.max_video_s, "device": args.device}
    try:
        served, first = open_model(args.model, client, config)
    except Exception as exc:  # noqa: BLE001 - one clear line for a model that cannot be found
        print(f"stvg serve: cannot open {args.model}: {exc}")
        return 2
    if not served.reload(first or "local"):
        print(f"stvg serve: cannot load {args.model}: {served.last_error}")
        return 1
    secret = os.environ.get(SECRET_ENV) or secrets.token_hex(16)
    clean_up = follow_registry(served, client, args, secret) if served.alias else (lambda: None)
    os.environ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(args.timeout_s)  # read by the scoring app
    app = build_app(served, secret)
    app.router.on_shutdown.append(clean_up)  # uvicorn re-raises SIGTERM after shutdown: not after run()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
