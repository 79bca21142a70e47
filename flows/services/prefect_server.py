"""The Prefect server on PostgreSQL (``prefect`` database), HTTP basic auth on, analytics off.

Its state (``PREFECT_HOME``) stays in its folder. The database password comes from ``.services/pgpass``
(``PGPASSFILE``, read by asyncpg); the API's ``user:password`` (``PREFECT_SERVER_API_AUTH_STRING``) is
generated, and clients send it as ``PREFECT_API_AUTH_STRING`` from ``.services/env``. Unauthenticated
requests get 401 except the health probe. Turned off: the anonymous usage report sent on start
(``PREFECT_SERVER_ANALYTICS_ENABLED``) and the UI's promotional content and upgrade prompts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from flows.services import procs
from flows.services.base import Service
from flows.services.layout import ADMIN_USER, HOST


class PrefectServer(Service):
    name = "prefect"
    port_fields = ("prefect",)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def auth_string(self) -> str:
        return f"{ADMIN_USER}:{self.secrets['prefect_api']}"

    def markers(self) -> Sequence[str]:
        return ("prefect", "server", f"--port {self.layout.ports.prefect}")

    def healthy(self) -> bool:
        return procs.http_status(f"{self.api_url}/health") == 200

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "prefect", "server", "start",
                "--host", HOST, "--port", str(self.layout.ports.prefect), "--analytics-off"]  # fmt: skip

    def env(self) -> dict[str, str]:
        client_settings = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_PROFILES_PATH")
        base = {k: v for k, v in super().env().items() if k not in client_settings}
        return base | {
            "PREFECT_HOME": str(self.folder / "home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": (
                f"postgresql+asyncpg://prefect@{HOST}:{self.layout.ports.postgres}/prefect"
            ),
            "PGPASSFILE": str(self.layout.pgpass_file),
            "PREFECT_SERVER_API_AUTH_STRING": self.auth_string,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "DO_NOT_TRACK": "1",
        }
