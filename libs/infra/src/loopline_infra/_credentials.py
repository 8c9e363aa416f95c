"""The credentials `loopline infra up` generates: one principal per service and client role.

They live in the project's data folder, `credentials.json` and the signing-keys table
`signing-keys.json`, both mode 0600 (the only files Loopline writes secrets to). A principal
keeps its secrets from one `up` to the next; a missing one (a new tenant, a new service) gets
fresh ones. The servers' own secrets (the admin's, the Kafka controllers') are there too.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from loopline_runtime import (
    CREDENTIALS_FILE,
    SIGNING_KEYS_FILE,
    ClusterEndpoints,
    Credentials,
    KafkaLogin,
    KafkaSettings,
    PostgresLogin,
    PrincipalCredentials,
    RedisLogin,
    read_credentials,
)
from pydantic import SecretStr

from loopline_infra._acls import (
    ADMIN,
    DEFAULT_TENANT,
    OPERATOR,
    SERVICE_PRINCIPALS,
    client_principal,
)
from loopline_infra._paths import Paths

CONTROLLER_SECRET = "kafka_controller_password"
"""The password the Kafka nodes' controller listener (SASL/PLAIN) takes from each other."""
ACTS_FOR_ANY = ("*",)
SIGNERS_FOR_ANY = frozenset({"memory", "planner", "recovery", "gateway", OPERATOR})
"""Principals that may sign events of any tenant (the planner fails a run over its tenant's
quota); the tool-executor signs nothing a tenant owns; a client signs its own tenant's only."""
KEYS_READERS = frozenset({"memory", "gateway"})
"""Principals that check others' signatures: they get the signing-keys table."""
POSTGRES_ROLES = {
    "memory": "loopline_memory",
    "planner": "loopline_planner",
    "tool-executor": "loopline_executor",
    "recovery": "loopline_recovery",
    "gateway": "loopline_gateway",
    OPERATOR: "loopline_operator",
}
"""PostgreSQL's login role of each principal that has one."""
REDIS_USERS = (*SERVICE_PRINCIPALS, OPERATOR, ADMIN)


def new_secret() -> str:
    """A password: 32 random bytes, URL-safe (fits a URL, a DSN and a JAAS line as is)."""
    return secrets.token_urlsafe(32)


def new_signing_key() -> str:
    """A signing key: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _principal(name: str, acts_for: tuple[str, ...]) -> PrincipalCredentials:
    role = POSTGRES_ROLES.get(name)
    return PrincipalCredentials(
        kafka=KafkaLogin(username=name, password=SecretStr(new_secret())),
        postgres=PostgresLogin(role=role, password=SecretStr(new_secret())) if role else None,
        redis=RedisLogin(user=name, password=SecretStr(new_secret()))
        if name in REDIS_USERS
        else None,
        signing_key=SecretStr(new_signing_key()),
        acts_for=acts_for,
    )


def _acts_for(name: str) -> tuple[str, ...]:
    if name in SIGNERS_FOR_ANY:
        return ACTS_FOR_ANY
    if name.startswith("client-"):
        return (name.removeprefix("client-"),)
    return ()


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner alone, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(path)


class CredentialStore:
    """The credentials file of one Loopline home."""

    def __init__(self, paths: Paths | Path):
        home = paths if isinstance(paths, Path) else paths.home
        self.path = home / CREDENTIALS_FILE
        self.signing_keys_path = home / SIGNING_KEYS_FILE
        self._lock = home / "credentials.lock"

    def load(self) -> Credentials | None:
        """The credentials, if `infra up` wrote them in this home."""
        return read_credentials(self.path) if self.path.exists() else None

    def require(self) -> Credentials:
        """The credentials; InfraError-free: a missing file is a ConfigurationError."""
        return read_credentials(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (several test workers start the same home)."""
        self._lock.parent.mkdir(parents=True, exist_ok=True)
        with self._lock.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure(
        self,
        endpoints: ClusterEndpoints,
        tenants: tuple[str, ...] = (),
        internal: tuple[str, ...] = (CONTROLLER_SECRET,),
    ) -> Credentials:
        """The credentials of every principal (the admin, the operator, each service, the
        `default` tenant's client and `tenants`' clients) and the servers' `internal`
        secrets, the missing ones made, for servers at `endpoints`; written with the
        signing-keys table."""
        with self._locked():
            current = self.load()
            principals = dict(current.principals) if current else {}
            secrets_ = dict(current.internal) if current else {}
            names = [ADMIN, OPERATOR, *SERVICE_PRINCIPALS, client_principal(DEFAULT_TENANT)]
            names += [client_principal(t) for t in tenants]
            for name in names:
                if name not in principals:
                    principals[name] = _principal(name, _acts_for(name))
            for secret in internal:
                secrets_.setdefault(secret, SecretStr(new_secret()))
            credentials = Credentials(endpoints=endpoints, principals=principals, internal=secrets_)
            if credentials != current:
                self.write(credentials)
            return credentials

    def write(self, credentials: Credentials) -> None:
        """Write `credentials` as this home's file, with their signing-keys table."""
        write_private(self.path, json.dumps(credentials.revealed(), indent=2) + "\n")
        signers = credentials.model_copy(
            update={"principals": {k: v for k, v in credentials.principals.items() if k != ADMIN}}
        )
        write_private(self.signing_keys_path, json.dumps(signers.signing_keys(), indent=2) + "\n")

    def kafka_settings(self, principal: str, bootstrap: str | None = None) -> KafkaSettings:
        """Kafka settings that log in as `principal` (at `bootstrap`, or the file's)."""
        credentials = self.require()
        login = credentials.principal(principal).kafka
        return KafkaSettings(
            bootstrap=bootstrap or credentials.endpoints.kafka_bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            username=login.username,
            password=login.password,
        )

    def process_env(self, principal: str) -> dict[str, str]:
        """The variables of a process acting as `principal`: its own Kafka user, PostgreSQL
        role, Redis user and signing key (and the signing-keys table, for those that check
        others' signatures)."""
        keys = self.signing_keys_path if principal in KEYS_READERS else None
        return self.require().env(principal, signing_keys=keys)
