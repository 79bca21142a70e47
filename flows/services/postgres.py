"""PostgreSQL 15 in ``.services/postgres/data``: TCP on 127.0.0.1 only (no Unix socket), passwords required.

``initdb`` refuses to run as root, so as root every server binary runs as the ``postgres`` user
(``runuser``), which then owns the folder; as any other user they run as that user. The superuser's
password is generated; clients reach their database with the role's password from ``.services/pgpass``
(libpq's ``PGPASSFILE``, also read by asyncpg), so no password is on a command line or in a URI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from flows.services import procs
from flows.services.base import Service
from flows.services.layout import DATABASES, HOST
from flows.services.secrets import write_private

PG_BIN_ENV_VAR = "STVG_PG_BIN"  # folder holding initdb/pg_ctl/psql when not the Debian default
DEFAULT_PG_BINS = ("/usr/lib/postgresql/15/bin",)
OS_USER = "postgres"  # who runs the server when `stvg services up` runs as root
SUPERUSER = "postgres"
ROLE_SECRETS = {"mlflow": "mlflow_db", "prefect": "prefect_db"}


def pg_bin(tool: str) -> str:
    """Path of a PostgreSQL program: $STVG_PG_BIN, the Debian 15 folder, else PATH."""
    folders = [os.environ.get(PG_BIN_ENV_VAR, ""), *DEFAULT_PG_BINS]
    for folder in filter(None, folders):
        candidate = Path(folder) / tool
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(tool)
    if not found:
        raise procs.ServiceError(
            f"postgres: `{tool}` not found in {', '.join(filter(None, folders))} or on PATH; install PostgreSQL 15 "
            f"(Debian: apt-get install postgresql-15) or set {PG_BIN_ENV_VAR} to its bin folder"
        )
    return found


class Postgres(Service):
    name = "postgres"
    port_fields = ("postgres",)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{HOST}:{self.layout.ports.postgres}"

    def markers(self) -> Sequence[str]:
        return ("postgres", str(self.data))

    def pid(self) -> int | None:
        pid = procs.read_pid(self.data / "postmaster.pid")
        return pid if procs.alive(pid, self.markers()) else None

    def healthy(self) -> bool:
        try:
            procs.run(
                [pg_bin("pg_isready"), "-q", "-h", HOST, "-p", str(self.layout.ports.postgres)],
                "pg_isready",
                timeout_s=10,
            )
        except procs.ServiceError:
            return False
        return True

    def start(self) -> int:
        self.check_ports_free()
        if not (self.data / "PG_VERSION").is_file():
            self._initdb()
        self._as_owner(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "120", "start"],
            "pg_ctl start",
        )
        pid = self.pid()
        if pid is None:
            raise procs.ServiceError(
                f"postgres did not start; see {self.log_path}:\n{procs.log_tail(self.log_path)}"
            )
        self.wait_healthy(pid, lambda: not procs.alive(pid, self.markers()))
        self.ensure_databases()
        return pid

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        self._as_owner(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"], "pg_ctl stop"
        )
        return True

    def _initdb(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._give_to_owner(self.folder)
        pwfile = self.folder / "initdb.pw"
        write_private(pwfile, self.secrets["postgres"] + "\n")
        self._give_to_owner(pwfile)
        try:
            self._as_owner(
                [pg_bin("initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"],
                "initdb",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        settings = (
            f"\n# written by `stvg services up`\nlisten_addresses = '{HOST}'\n"
            f"port = {self.layout.ports.postgres}\nunix_socket_directories = ''\n"
        )
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(settings)

    def ensure_databases(self) -> None:
        """The roles and databases of DATABASES (created once; passwords from the secrets)."""
        for role, databases in DATABASES.items():
            password = self.secrets[ROLE_SECRETS[role]]
            if not self._query(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"):
                self._query(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            for database in databases:
                if not self._query(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
                    self._query(f"CREATE DATABASE {database} OWNER {role}")
        lines = [
            f"{HOST}:{self.layout.ports.postgres}:{db}:{role}:{self.secrets[ROLE_SECRETS[role]]}"
            for role, databases in DATABASES.items()
            for db in databases
        ]
        write_private(self.layout.pgpass_file, "\n".join(lines) + "\n")

    def _query(self, sql: str) -> str:
        env = os.environ | {"PGPASSWORD": self.secrets["postgres"], "PGCONNECT_TIMEOUT": "10"}
        argv = [pg_bin("psql"), "-X", "-q", "-t", "-A", "-h", HOST, "-p", str(self.layout.ports.postgres),
                "-U", SUPERUSER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql]  # fmt: skip
        return procs.run(argv, "postgres: psql", env=env).strip()

    def _as_owner(self, argv: list[str], what: str) -> str:
        if os.geteuid() == 0:
            self._check_reachable()
            argv = ["runuser", "-u", OS_USER, "--", *argv]
        return procs.run(argv, f"postgres: {what}", timeout_s=180)

    def _give_to_owner(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, OS_USER, OS_USER)

    def _check_reachable(self) -> None:
        """As root the server runs as `postgres`, which must be able to enter every parent folder."""
        try:
            procs.run(
                ["runuser", "-u", OS_USER, "--", "test", "-x", str(self.folder.parent)], "check", timeout_s=10
            )
        except procs.ServiceError as exc:
            raise procs.ServiceError(
                f"postgres: the `{OS_USER}` user cannot enter {self.folder.parent} (a parent folder is not "
                f"searchable by others): `chmod o+x` the folders on that path, or keep the checkout where "
                f"`{OS_USER}` can reach it"
            ) from exc
