"""API keys: each bound to a tenant and a role, stored hashed in the gateway's own schema.

A key reads `llk_<id>_<secret>`: the id finds its row, the secret is checked against a salted
scrypt hash of it. The key itself is shown once, when it is created, and never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.api_keys (
        key_id      text PRIMARY KEY,
        tenant      text NOT NULL,
        role        text NOT NULL CHECK (role IN ('user', 'operator')),
        name        text NOT NULL DEFAULT '',
        salt        bytea NOT NULL,
        digest      bytea NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        revoked_at  timestamptz
    );
    CREATE TABLE {schema}.submitted (
        run_id        text PRIMARY KEY,
        tenant        text NOT NULL,
        key_id        text NOT NULL,
        kind          text NOT NULL,
        parent_run_id text,
        submitted_at  timestamptz NOT NULL DEFAULT now()
    );
    """,
)
"""The `gateway` schema: API keys, and the runs the gateway started (whose tenant it knows
before memory has folded their goal)."""

KEY_PATTERN = re.compile(r"^llk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

# scrypt at n=2^14, r=8, p=1: 16 MiB and tens of milliseconds per check; a verified key is
# then cached (GatewaySettings.key_cache_s), so the cost is paid once per key and process.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class Role(StrEnum):
    """What a key may do: `user` acts on its tenant's runs; `operator` sees every tenant's
    runs and the dead letters, and may redrive them."""

    USER = "user"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the key's id, tenant and role."""

    key_id: str
    tenant: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def may_see(self, tenant: str) -> bool:
        """Whether runs of `tenant` are visible to this principal."""
        return self.is_operator or tenant == self.tenant


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret."""

    key_id: str
    tenant: str
    role: Role
    name: str
    created_at: datetime
    revoked_at: datetime | None


class KeyRefusedError(ValueError):
    """A key cannot be created as asked (the message says why)."""


def _digest(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024
    )


class KeyStore:
    """Creates, verifies, lists and revokes keys in the gateway's schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, cache_s: float = 30.0):
        self.pool, self.schema, self.cache_s = pool, schema, cache_s
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def create(self, tenant: str, role: Role = Role.USER, name: str = "") -> tuple[str, str]:
        """A new key for `tenant`: (its id, the key itself, to be shown once)."""
        if not TENANT_PATTERN.match(tenant):
            raise KeyRefusedError(
                f"tenant {tenant!r}: 1 to 128 letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit"
            )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        digest = await asyncio.to_thread(_digest, secret, salt)
        await self.pool.execute(
            f'INSERT INTO "{self.schema}".api_keys (key_id, tenant, role, name, salt, digest) '
            "VALUES ($1, $2, $3, $4, $5, $6)",
            key_id,
            tenant,
            role.value,
            name[:200],
            salt,
            digest,
        )
        return key_id, f"llk_{key_id}_{secret}"

    async def verify(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None for anything else."""
        match = KEY_PATTERN.match(key)
        if match is None:
            return None
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        cached = self._verified.get(fingerprint)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        key_id, secret = match.groups()
        row = await self.pool.fetchrow(
            f'SELECT tenant, role, salt, digest FROM "{self.schema}".api_keys '
            "WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None:
            return None
        digest = await asyncio.to_thread(_digest, secret, bytes(row["salt"]))
        if not hmac.compare_digest(digest, bytes(row["digest"])):
            return None
        principal = Principal(key_id, row["tenant"], Role(row["role"]))
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[fingerprint] = (principal, time.monotonic() + self.cache_s)
        return principal

    async def list(self) -> list[KeyInfo]:
        """Every key, newest first."""
        rows = await self.pool.fetch(
            f"SELECT key_id, tenant, role, name, created_at, revoked_at "
            f'FROM "{self.schema}".api_keys ORDER BY created_at DESC'
        )
        return [KeyInfo(**{**dict(r), "role": Role(r["role"])}) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key (processes that cached it stop trusting it within `cache_s`)."""
        status = await self.pool.execute(
            f'UPDATE "{self.schema}".api_keys SET revoked_at = now() '
            "WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        return bool(status.endswith(" 1"))
