"""``mlflow server`` on PostgreSQL with artifacts proxied to ``s3://mlflow`` and MLflow's basic-auth app.

Runs and the registry go to the ``mlflow`` database, users to ``mlflow_auth``; the admin password is
generated (``.services/secrets.json``) and given to MLflow through its auth config file (mode 600), so it
creates the admin on first start. Every request without valid credentials gets 401 (``/health`` aside).
Clients send the credentials through ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` from
``.services/env``, never in the tracking URI. Telemetry and the job runner are off; boto3 is told the
store's endpoint and never looks for credentials on a cloud metadata address.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from flows.services import procs
from flows.services.base import Service
from flows.services.layout import ADMIN_USER, AUTH_CACHE_TTL_S, HOST, MLFLOW_BUCKET, MLFLOW_WORKERS
from flows.services.objectstore import s3_client_env
from flows.services.secrets import write_private


class MlflowServer(Service):
    name = "mlflow"
    port_fields = ("mlflow",)

    def markers(self) -> Sequence[str]:
        return ("mlflow", "server", f"--port {self.layout.ports.mlflow}")

    def healthy(self) -> bool:
        return procs.http_status(f"{self.url}/health") == 200

    def database_uri(self, database: str) -> str:
        return f"postgresql://mlflow@{HOST}:{self.layout.ports.postgres}/{database}"

    def prepare(self) -> None:
        config = (
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = {self.database_uri('mlflow_auth')}\n"
            f"admin_username = {ADMIN_USER}\n"
            f"admin_password = {self.secrets['mlflow_admin']}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
        )
        write_private(self.folder / "basic_auth.ini", config)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.database_uri("mlflow"),
            "--artifacts-destination", f"s3://{MLFLOW_BUCKET}",
            "--host", HOST, "--port", str(self.layout.ports.mlflow),
            "--workers", str(MLFLOW_WORKERS), "--app-name", "basic-auth",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return super().env() | {
            "PGPASSFILE": str(self.layout.pgpass_file),
            "MLFLOW_AUTH_CONFIG_PATH": str(self.folder / "basic_auth.ini"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secrets["mlflow_flask"],
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **s3_client_env(self.layout.url("s3"), self.secrets),
        }
