"""Who a Loopline process is on Kafka, PostgreSQL and Redis: the credentials file.

`loopline infra up` gives every principal (each service, the gateway, the local operator and
each tenant's client) its own Kafka user, PostgreSQL role, Redis user and signing key, and
writes them to `credentials.json` in the project's data folder (mode 0600). The services are
started with their own principal's variables; the CLI and the SDK, run on this machine with
no credentials of their own in the environment, act as the `operator` from that file, as
`kubectl` does from its kubeconfig.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loopline_events import SigningKey, decode_secret
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from loopline_runtime._errors import ConfigurationError

CREDENTIALS_FILE_VARIABLE = "LOOPLINE_CREDENTIALS_FILE"
CREDENTIALS_FILE = "credentials.json"
SIGNING_KEYS_FILE = "signing-keys.json"
LOCAL_PRINCIPAL = "operator"
"""The principal the CLI and the SDK act as on this machine when the environment names none."""
PROJECT_MARKER = Path("infra") / "kafka" / "pom.xml"


class KafkaLogin(BaseModel):
    """A SASL/SCRAM user of the cluster."""

    model_config = ConfigDict(frozen=True)

    username: str = Field(description="The user name: the ACLs' principal `User:<name>`.")
    password: SecretStr = Field(description="Its password.")


class PostgresLogin(BaseModel):
    """A PostgreSQL role that logs in with a password (SCRAM)."""

    model_config = ConfigDict(frozen=True)

    role: str = Field(description="The role's name.")
    password: SecretStr = Field(description="Its password.")


class RedisLogin(BaseModel):
    """A Redis ACL user."""

    model_config = ConfigDict(frozen=True)

    user: str = Field(description="The ACL user's name.")
    password: SecretStr = Field(description="Its password.")


class PrincipalCredentials(BaseModel):
    """Everything one principal logs in with."""

    model_config = ConfigDict(frozen=True)

    kafka: KafkaLogin = Field(description="Its Kafka user.")
    postgres: PostgresLogin | None = Field(
        default=None, description="Its PostgreSQL role (none for a tenant's client)."
    )
    redis: RedisLogin | None = Field(
        default=None, description="Its Redis user (none for a tenant's client)."
    )
    signing_key: SecretStr = Field(
        description="32 random bytes, base64: the key it signs the events it produces with."
    )
    acts_for: tuple[str, ...] = Field(
        default=(),
        description="The tenants whose events it may sign: ('*',) for any, () for none.",
    )


class ClusterEndpoints(BaseModel):
    """Where the servers these credentials are for listen."""

    model_config = ConfigDict(frozen=True)

    kafka_bootstrap: str
    kafka_security_protocol: str = "SASL_PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    redis_host: str = "127.0.0.1"
    redis_port: int
    postgres_host: str = "127.0.0.1"
    postgres_port: int
    postgres_database: str = "loopline"


class Credentials(BaseModel):
    """The credentials file: the servers, and each principal's credentials."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    endpoints: ClusterEndpoints
    principals: dict[str, PrincipalCredentials] = Field(default_factory=dict)
    internal: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Secrets only the servers use among themselves (the Kafka controllers' "
        "listener).",
    )

    def principal(self, name: str) -> PrincipalCredentials:
        """The credentials of `name`; ConfigurationError naming the known ones if absent."""
        try:
            return self.principals[name]
        except KeyError:
            known = ", ".join(sorted(self.principals))
            raise ConfigurationError(
                f"no principal {name!r} in the credentials file (there are: {known})"
            ) from None

    def signing_key(self, name: str) -> SigningKey:
        """The key principal `name` signs the goals and commands it produces with."""
        secret = self.principal(name).signing_key.get_secret_value()
        try:
            return SigningKey(name, decode_secret(secret, what=f"{name}'s signing key"))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    def kafka_env(self, name: str) -> dict[str, str]:
        """The LOOPLINE_KAFKA_* variables of principal `name`."""
        login = self.principal(name).kafka
        return {
            "LOOPLINE_KAFKA_BOOTSTRAP": self.endpoints.kafka_bootstrap,
            "LOOPLINE_KAFKA_SECURITY_PROTOCOL": self.endpoints.kafka_security_protocol,
            "LOOPLINE_KAFKA_SASL_MECHANISM": self.endpoints.kafka_sasl_mechanism,
            "LOOPLINE_KAFKA_USERNAME": login.username,
            "LOOPLINE_KAFKA_PASSWORD": login.password.get_secret_value(),
        }

    def postgres_dsn(self, name: str) -> str | None:
        """Principal `name`'s PostgreSQL DSN (None if it has no role)."""
        login = self.principal(name).postgres
        if login is None:
            return None
        e = self.endpoints
        secret = quote(login.password.get_secret_value(), safe="")
        return (
            f"postgresql://{login.role}:{secret}@{e.postgres_host}:{e.postgres_port}/"
            f"{e.postgres_database}"
        )

    def redis_url(self, name: str) -> str | None:
        """Principal `name`'s Redis URL (None if it has no Redis user)."""
        login = self.principal(name).redis
        if login is None:
            return None
        secret = quote(login.password.get_secret_value(), safe="")
        return f"redis://{login.user}:{secret}@{self.endpoints.redis_host}:{self.endpoints.redis_port}/0"

    def env(self, name: str, *, signing_keys: Path | None = None) -> dict[str, str]:
        """Every variable a process acting as `name` needs: Kafka, PostgreSQL, Redis, its
        signing key (and the table of everyone's, when given: memory and the gateway check
        others' signatures)."""
        env = self.kafka_env(name)
        dsn, url = self.postgres_dsn(name), self.redis_url(name)
        if dsn is not None:
            env["LOOPLINE_POSTGRES_DSN"] = dsn
        if url is not None:
            env["LOOPLINE_REDIS_URL"] = url
        env["LOOPLINE_SIGNING_KEY_ID"] = name
        env["LOOPLINE_SIGNING_KEY"] = self.principal(name).signing_key.get_secret_value()
        if signing_keys is not None:
            env["LOOPLINE_SIGNING_KEYS_FILE"] = str(signing_keys)
        return env

    def kcat_args(self, name: str) -> list[str]:
        """kcat's (librdkafka's) options that connect as `name`: with PLAIN, which the local
        listener (loopback only) also takes, as librdkafka before 2.6.1 cannot complete SCRAM
        with Kafka 4."""
        login = self.principal(name).kafka
        return [
            "-b",
            self.endpoints.kafka_bootstrap,
            "-X",
            f"security.protocol={self.endpoints.kafka_security_protocol}",
            "-X",
            "sasl.mechanisms=PLAIN",
            "-X",
            f"sasl.username={login.username}",
            "-X",
            f"sasl.password={login.password.get_secret_value()}",
        ]

    def signing_keys(self) -> dict[str, Any]:
        """The signing-keys table memory and the gateway check signatures against:
        `{"keys": {principal: {"secret": base64, "acts_for": [...]}}}`."""
        return {
            "keys": {
                name: {"secret": p.signing_key.get_secret_value(), "acts_for": list(p.acts_for)}
                for name, p in sorted(self.principals.items())
            }
        }

    def revealed(self) -> dict[str, Any]:
        """The file's content, secrets in clear: for writing the 0600 file, nothing else."""
        revealed: dict[str, Any] = _reveal(self.model_dump(mode="python"))
        return revealed


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def find_project_dir() -> Path | None:
    """The Loopline checkout (a folder with infra/kafka/pom.xml): LOOPLINE_PROJECT_DIR, else
    the first such folder above the working directory or this file."""
    explicit = os.environ.get("LOOPLINE_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / PROJECT_MARKER).is_file():
                return candidate
    return None


def credentials_path() -> Path | None:
    """Where the credentials file of this machine's Loopline is: LOOPLINE_CREDENTIALS_FILE,
    else in LOOPLINE_HOME, else in the project's `.loopline/` (None outside a project)."""
    explicit = os.environ.get(CREDENTIALS_FILE_VARIABLE)
    if explicit:
        return Path(explicit)
    home = os.environ.get("LOOPLINE_HOME")
    if home:
        return Path(home) / CREDENTIALS_FILE
    project = find_project_dir()
    return project / ".loopline" / CREDENTIALS_FILE if project is not None else None


def read_credentials(path: Path) -> Credentials:
    """The credentials file at `path`; ConfigurationError when it cannot be read."""
    try:
        return Credentials.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the credentials file {path}: {exc}") from None
    except ValueError as exc:
        raise ConfigurationError(
            f"the credentials file {path} is not one `loopline infra up` wrote "
            f"({str(exc).splitlines()[0]})"
        ) from None


def local_credentials() -> Credentials | None:
    """This machine's credentials file, if there is one (LOOPLINE_CREDENTIALS_FILE must
    exist when set)."""
    path = credentials_path()
    if path is None:
        return None
    if not path.exists():
        if os.environ.get(CREDENTIALS_FILE_VARIABLE):
            raise ConfigurationError(f"{CREDENTIALS_FILE_VARIABLE}={path}: no such file")
        return None
    return read_credentials(path)
