"""redis-server on the project's own port, with one ACL user per principal and no default user.

Each service's user reaches only its own keys, by the markers its key names carry after the
namespace (memory's `loopline:run:` and `loopline:history:`, the planner's `planner:`, the
watchdog's `loopline:watchdog:`), and runs no administrative command (no FLUSHALL, CONFIG,
KEYS or SCAN, which would list others' keys). The users are in an ACL file of the server's
folder (mode 0600), passwords hashed.
"""

from __future__ import annotations

import hashlib

from loopline_runtime import Credentials

from loopline_infra._acls import ADMIN, OPERATOR
from loopline_infra._components import Component, CredentialsRefusedError
from loopline_infra._credentials import CredentialStore, write_private
from loopline_infra._packages import REDIS, Say
from loopline_infra._process import InfraError, spawn

SERVICE_COMMANDS = (
    "-@all +@read +@write +@transaction +@connection -@dangerous -scan -randomkey "
    "+eval +evalsha +script|load +time"
)
"""Reads, writes, MULTI/EXEC and scripts (the planner's rate limiter is one) on its keys;
nothing that lists, flushes or reconfigures."""
KEYS: dict[str, tuple[str, ...]] = {
    "memory": ("*loopline:run:*", "*loopline:history:*"),
    "planner": ("*planner:reply:*", "*planner:history:*", "*planner:limit:*"),
    "recovery": ("*loopline:watchdog:*",),
    "tool-executor": ("*executor:*",),
    "gateway": ("*gateway:*",),
}
"""Each service's keys, whatever the namespace before them."""
OPERATOR_COMMANDS = "+@all -@dangerous +scan +info +config|get"
"""The operator rebuilds memory's projections, drops a namespace's keys (SCAN, DEL) and reads
the server's settings (the benchmark states its durability); it does not flush, reconfigure or
manage users."""


def acl_file(credentials: Credentials) -> str:
    """The server's ACL file: the admin, the operator and each service's user."""
    lines = ["user default off resetkeys resetchannels -@all"]
    for name, principal in sorted(credentials.principals.items()):
        login = principal.redis
        if login is None:
            continue
        digest = hashlib.sha256(login.password.get_secret_value().encode()).hexdigest()
        if name == ADMIN:
            rules = "~* &* +@all"
        elif name == OPERATOR:
            rules = f"~* resetchannels {OPERATOR_COMMANDS}"
        elif name in KEYS:
            patterns = " ".join(f"~{p}" for p in KEYS[name])
            rules = f"{patterns} resetchannels {SERVICE_COMMANDS}"
        else:
            continue
        lines.append(f"user {login.user} on #{digest} {rules}")
    return "\n".join(lines) + "\n"


class Redis(Component):
    """redis-server on the project's own port."""

    name = "redis"
    requirements = (REDIS,)

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.ports.redis,)

    @property
    def endpoint(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def _acl_file(self) -> str:
        return str(self.dir / "users.acl")

    def prepare(self, say: Say) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_private(self.dir / "users.acl", acl_file(CredentialStore(self.paths).require()))

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spawn(
            [
                "redis-server",
                "--port",
                str(self.ports.redis),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--save",
                "60 1000",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--aclfile",
                self._acl_file,
            ],
            log=self.log,
            pid_file=self.pid_file,
        )

    def admin_url(self) -> str:
        """The admin's URL of this server."""
        credentials = CredentialStore(self.paths).require()
        login = credentials.principal(ADMIN).redis
        if login is None:
            raise InfraError("the credentials file gives the admin no Redis user")
        secret = login.password.get_secret_value()
        return f"redis://{login.user}:{secret}@127.0.0.1:{self.ports.redis}/0"

    async def ready(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError

        client = aioredis.from_url(self.admin_url())
        try:
            if not await client.ping():
                raise InfraError("redis did not answer PING")
        except (AuthenticationError, AuthenticationWrongNumberOfArgsError):
            raise CredentialsRefusedError(
                f"redis on port {self.ports.redis} refuses this home's admin: an earlier "
                "Loopline (with no users) or another home started it; `loopline infra down` "
                "then `loopline infra up` restarts it with its users"
            ) from None
        finally:
            await client.aclose()
