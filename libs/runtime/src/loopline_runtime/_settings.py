"""Settings shared by every Loopline process, read from the environment by one function.

Every endpoint is a setting with a documented variable, so the same code runs against the
project's own infrastructure (`loopline infra up`) or any existing cluster.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_runtime._access import LOCAL_PRINCIPAL, Credentials, local_credentials
from loopline_runtime._secrets import register_settings

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_REDIS_PORT = 16379
DEFAULT_POSTGRES_PORT = 15432

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """How to reach Kafka and which namespace of topics to use."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_KAFKA_", frozen=True)

    bootstrap: str = Field(
        default=f"127.0.0.1:{DEFAULT_KAFKA_PORT}",
        description="Bootstrap servers, comma separated (LOOPLINE_KAFKA_BOOTSTRAP).",
    )
    topic_prefix: str = Field(
        default="",
        description="Prefix of every topic name, to run isolated namespaces on one cluster "
        "(LOOPLINE_KAFKA_TOPIC_PREFIX).",
    )
    session_timeout_ms: int = Field(
        default=6000,
        description="Consumer session timeout: how long a dead worker keeps its partitions.",
    )
    heartbeat_interval_ms: int = Field(
        default=1000, description="Consumer heartbeat interval; a third of the session or less."
    )
    linger_ms: int = Field(
        default=0,
        description="Producer linger: how long a batch waits to fill before it is sent. Outputs "
        "are sent a consumed batch at a time, and records queue while a request is in flight, so "
        "batching needs no waiting: every millisecond here is a millisecond on every hop.",
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Copies the cluster keeps of each partition of the topics Loopline creates "
        "(LOOPLINE_KAFKA_REPLICATION_FACTOR); unset: the cluster's default.replication.factor. "
        "An existing topic with fewer copies stops the services from starting. Production: 3.",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Copies a write must reach before the broker acknowledges it (the topics' "
        "min.insync.replicas; LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS); unset: the replication "
        "factor minus one, at least 1. Production: 2.",
    )
    replication_by_class: dict[str, int] = Field(
        default_factory=dict,
        description="The replication factor of one topic class (run, derived, dead-letter, "
        "retry) instead of replication_factor, as JSON: "
        "LOOPLINE_KAFKA_REPLICATION_BY_CLASS='{\"retry\": 2}'.",
    )
    min_insync_by_class: dict[str, int] = Field(
        default_factory=dict,
        description="min.insync.replicas of one topic class instead of min_insync_replicas, as "
        "JSON: LOOPLINE_KAFKA_MIN_INSYNC_BY_CLASS='{\"retry\": 1}'.",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="How clients talk to the brokers (LOOPLINE_KAFKA_SECURITY_PROTOCOL): "
        "PLAINTEXT, SSL (TLS), SASL_PLAINTEXT (authenticated) or SASL_SSL (authenticated, over "
        "TLS). The local infrastructure runs SASL_PLAINTEXT on 127.0.0.1.",
    )
    sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512",
        description="SASL mechanism of SASL_* protocols (LOOPLINE_KAFKA_SASL_MECHANISM): "
        "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (PLAIN sends the password itself: TLS only).",
    )
    username: str | None = Field(
        default=None,
        description="SASL user name, the Kafka principal `User:<name>` the ACLs name "
        "(LOOPLINE_KAFKA_USERNAME).",
    )
    password: SecretStr | None = Field(
        default=None, description="SASL password (LOOPLINE_KAFKA_PASSWORD)."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities the brokers' TLS certificates are "
        "checked against (LOOPLINE_KAFKA_CA_FILE); unset: the system's.",
    )
    cert_file: Path | None = Field(
        default=None,
        description="PEM client certificate, for brokers that authenticate clients by TLS "
        "(LOOPLINE_KAFKA_CERT_FILE); with LOOPLINE_KAFKA_KEY_FILE.",
    )
    key_file: Path | None = Field(
        default=None,
        description="PEM private key of LOOPLINE_KAFKA_CERT_FILE (LOOPLINE_KAFKA_KEY_FILE).",
    )

    @model_validator(mode="after")
    def _security_fits(self) -> Self:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not (self.username and self.password):
            raise ValueError(
                f"LOOPLINE_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "LOOPLINE_KAFKA_USERNAME and LOOPLINE_KAFKA_PASSWORD"
            )
        if not sasl and self.username:
            raise ValueError(
                f"LOOPLINE_KAFKA_USERNAME is set but LOOPLINE_KAFKA_SECURITY_PROTOCOL is "
                f"{self.security_protocol}: set it to SASL_PLAINTEXT or SASL_SSL"
            )
        if self.security_protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN":
            raise ValueError(
                "LOOPLINE_KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT sends the password in "
                "clear: use SCRAM-SHA-512, or SASL_SSL"
            )
        for variable, path in (
            ("LOOPLINE_KAFKA_CA_FILE", self.ca_file),
            ("LOOPLINE_KAFKA_CERT_FILE", self.cert_file),
            ("LOOPLINE_KAFKA_KEY_FILE", self.key_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{variable}={path}: no such file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("LOOPLINE_KAFKA_CERT_FILE and LOOPLINE_KAFKA_KEY_FILE go together")
        return self

    @property
    def principal(self) -> str:
        """The Kafka principal these settings authenticate as (`User:ANONYMOUS` without SASL)."""
        return f"User:{self.username}" if self.username else "User:ANONYMOUS"

    def client_options(self) -> dict[str, Any]:
        """The bootstrap servers and security options of an aiokafka client (producer,
        consumer or admin): every client Loopline builds takes them, so one setting secures
        them all."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL_"):
            assert self.password is not None  # checked by _security_fits
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.get_secret_value()
        if self.security_protocol.endswith("SSL"):
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context checking the brokers' certificates (and presenting ours, if any)."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class RedisSettings(BaseSettings):
    """How to reach Redis (hot state, caches)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_REDIS_", frozen=True)

    url: SecretStr = Field(
        default=SecretStr(f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0"),
        description="Redis URL, with the ACL user and password when Redis asks for them: "
        "redis://USER:PASSWORD@HOST:PORT/DB, or rediss:// for TLS (LOOPLINE_REDIS_URL).",
    )


class PostgresSettings(BaseSettings):
    """How to reach PostgreSQL (durable state)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_POSTGRES_", frozen=True)

    dsn: SecretStr = Field(
        default=SecretStr(f"postgresql://loopline@127.0.0.1:{DEFAULT_POSTGRES_PORT}/loopline"),
        description="PostgreSQL DSN, with the role and password: "
        "postgresql://ROLE:PASSWORD@HOST:PORT/DATABASE (LOOPLINE_POSTGRES_DSN).",
    )


class Endpoints(BaseSettings):
    """The three endpoints every Loopline process may need."""

    model_config = SettingsConfigDict(frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)

    def env(self) -> dict[str, str]:
        """The LOOPLINE_* variables that give another process these endpoints, credentials
        included (for a child process's environment, never for a log)."""
        kafka = self.kafka
        env = {
            "LOOPLINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "LOOPLINE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "LOOPLINE_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
            "LOOPLINE_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
            "LOOPLINE_REDIS_URL": self.redis.url.get_secret_value(),
            "LOOPLINE_POSTGRES_DSN": self.postgres.dsn.get_secret_value(),
        }
        if kafka.username is not None and kafka.password is not None:
            env["LOOPLINE_KAFKA_USERNAME"] = kafka.username
            env["LOOPLINE_KAFKA_PASSWORD"] = kafka.password.get_secret_value()
        for variable, path in (
            ("LOOPLINE_KAFKA_CA_FILE", kafka.ca_file),
            ("LOOPLINE_KAFKA_CERT_FILE", kafka.cert_file),
            ("LOOPLINE_KAFKA_KEY_FILE", kafka.key_file),
        ):
            if path is not None:
                env[variable] = str(path)
        return env


def load_endpoints() -> Endpoints:
    """Read the endpoints from the environment (never at import time); the secrets they hold
    are registered, so `redact` keeps them out of logs and events.

    What the environment leaves unset (no Kafka user or security protocol, no Redis URL, no
    PostgreSQL DSN) comes from this machine's credentials file, as the local operator, when
    there is one: the CLI and the SDK need no variables next to `loopline infra up`.
    """
    kafka, redis, postgres = KafkaSettings(), RedisSettings(), PostgresSettings()
    local = local_credentials()
    if local is not None and LOCAL_PRINCIPAL in local.principals:
        kafka, redis, postgres = _as_local_operator(local, kafka, redis, postgres)
    endpoints = Endpoints(kafka=kafka, redis=redis, postgres=postgres)
    register_settings(endpoints)
    return endpoints


def _as_local_operator(
    local: Credentials, kafka: KafkaSettings, redis: RedisSettings, postgres: PostgresSettings
) -> tuple[KafkaSettings, RedisSettings, PostgresSettings]:
    """The settings with what the environment left unset taken from the local operator's
    credentials; Kafka only when the bootstrap is the file's (or unset): another cluster's
    users are not ours."""
    given = kafka.model_fields_set
    same_cluster = "bootstrap" not in given or kafka.bootstrap == local.endpoints.kafka_bootstrap
    if same_cluster and not {"security_protocol", "username", "password"} & given:
        env = local.kafka_env(LOCAL_PRINCIPAL)
        kafka = kafka.model_copy(
            update={
                "bootstrap": env["LOOPLINE_KAFKA_BOOTSTRAP"],
                "security_protocol": env["LOOPLINE_KAFKA_SECURITY_PROTOCOL"],
                "sasl_mechanism": env["LOOPLINE_KAFKA_SASL_MECHANISM"],
                "username": env["LOOPLINE_KAFKA_USERNAME"],
                "password": SecretStr(env["LOOPLINE_KAFKA_PASSWORD"]),
            }
        )
    url, dsn = local.redis_url(LOCAL_PRINCIPAL), local.postgres_dsn(LOCAL_PRINCIPAL)
    if "url" not in redis.model_fields_set and url is not None:
        redis = RedisSettings(url=SecretStr(url))
    if "dsn" not in postgres.model_fields_set and dsn is not None:
        postgres = PostgresSettings(dsn=SecretStr(dsn))
    return kafka, redis, postgres
