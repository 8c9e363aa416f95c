"""PostgreSQL in a data folder of the project's own (initdb + pg_ctl), with password logins.

Every principal logs in over TCP (127.0.0.1) with its role and password (SCRAM-SHA-256); the
one superuser, `loopline_admin`, logs in only through the server's Unix socket, as the system
account that runs `loopline infra` (peer authentication): it creates the roles and grants
(_postgres_roles.py), and nothing else uses it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
from pathlib import Path

import asyncpg

from loopline_infra._components import Component, Ports
from loopline_infra._packages import POSTGRES, Say, postgres_bin_dir
from loopline_infra._paths import Paths
from loopline_infra._process import InfraError, run

ADMIN_ROLE = "loopline_admin"
DATABASE = "loopline"
SECURED_MARK = "# loopline: password logins"
"""First line of the pg_hba.conf this code writes: a data folder without it predates them."""


def _world_traversable(path: Path) -> bool:
    """Whether every existing folder from / down to `path` lets any user pass through."""
    for folder in (path, *path.parents):
        try:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        except FileNotFoundError:
            continue
    return True


def hba_file() -> str:
    """Who may log in how: the admin through the socket as the system account that runs the
    infrastructure; every other role over TCP with its password."""
    return (
        f"{SECURED_MARK} (rendered by `loopline infra up`)\n"
        f"local   all   {ADMIN_ROLE}   peer map=loopline\n"
        "host    all   all   127.0.0.1/32   scram-sha-256\n"
        "host    all   all   ::1/128        scram-sha-256\n"
    )


def ident_file(system_user: str) -> str:
    """The system account allowed to be the admin through the socket."""
    return f"loopline   {system_user}   {ADMIN_ROLE}\n"


class Postgres(Component):
    """PostgreSQL in a data folder of the project's own (initdb + pg_ctl)."""

    name = "postgres"
    requirements = (POSTGRES,)
    database = DATABASE

    def __init__(self, paths: Paths, ports: Ports):
        super().__init__(paths, ports)
        if os.geteuid() == 0 and not _world_traversable(self.dir.parent):
            # As root, the server runs as `postgres`, which cannot reach a data folder under a
            # private directory (a 0700 temp dir, /root): keep it in a folder of this project's
            # own under /var/lib instead, named after the project's home.
            digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
            self.dir = Path("/var/lib/loopline") / f"postgres-{digest}"

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.ports.postgres,)

    @property
    def endpoint(self) -> str:
        return f"postgresql://127.0.0.1:{self.ports.postgres}/{self.database}"

    @property
    def socket_dir(self) -> Path:
        """Where the server's Unix socket is (the admin's only way in)."""
        return self.dir

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    @property
    def pid_file(self) -> Path:
        return self._data / "postmaster.pid"

    def _user(self) -> str | None:
        """PostgreSQL refuses to run as root: run it as the `postgres` account then."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            run(["useradd", "--system", "--no-create-home", "postgres"], what="useradd postgres")
        return "postgres"

    def _bin(self, program: str) -> str:
        found = postgres_bin_dir()
        if found is None:
            raise InfraError("PostgreSQL programs not found")
        return str(found / program)

    def prepare(self, say: Say) -> None:
        user = self._user()
        self.dir.mkdir(parents=True, exist_ok=True)
        if user:
            self.dir.chmod(0o755)
            shutil.chown(self.dir, user)
        if not (self._data / "PG_VERSION").exists():
            say("postgres: initialising a data folder")
            run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self._data),
                    "-U",
                    ADMIN_ROLE,
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                what="initdb",
                user=user,
            )
        elif not (self._data / "pg_hba.conf").read_text().startswith(SECURED_MARK):
            raise InfraError(
                f"postgres: its data in {self._data} was made by an earlier Loopline (one "
                "superuser, connections trusted); `loopline infra down --wipe` deletes it (and "
                "its runs), then `loopline infra up` starts it with a role per service"
            )
        self._write_config(user)

    def _write_config(self, user: str | None) -> None:
        """pg_hba.conf and pg_ident.conf, readable by the server's account alone."""
        system_user = pwd.getpwuid(os.geteuid()).pw_name
        for name, text in (("pg_hba.conf", hba_file()), ("pg_ident.conf", ident_file(system_user))):
            path = self._data / name
            path.write_text(text)
            path.chmod(0o600)
            if user:
                shutil.chown(path, user)

    def start(self) -> None:
        options = (
            f"-p {self.ports.postgres} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.socket_dir} -c unix_socket_permissions=0700 "
            "-c password_encryption=scram-sha-256 -c max_connections=200 "
            "-c shared_buffers=256MB -c fsync=on"
        )
        run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self._data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            what="pg_ctl start",
            user=self._user(),
        )

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        run(
            [self._bin("pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "-t", "60", "stop"],
            what="pg_ctl stop",
            user=self._user(),
        )
        return True

    async def admin_connection(self, database: str | None = None) -> asyncpg.Connection:
        """A connection as the admin, through the socket (to `database`, Loopline's by
        default)."""
        return await asyncpg.connect(
            host=str(self.socket_dir),
            port=self.ports.postgres,
            user=ADMIN_ROLE,
            database=database or self.database,
            timeout=3,
        )

    async def ready(self) -> None:
        conn = await self.admin_connection("postgres")
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
