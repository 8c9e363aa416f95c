"""Settings shared by every Loopline process, read from the environment by one function.

Every endpoint is a setting with a documented variable, so the same code runs against the
project's own infrastructure (`loopline infra up`) or any existing cluster.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_runtime._secrets import register_settings

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_REDIS_PORT = 16379
DEFAULT_POSTGRES_PORT = 15432


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


class RedisSettings(BaseSettings):
    """How to reach Redis (hot state, caches)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_REDIS_", frozen=True)

    url: str = Field(
        default=f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0",
        description="Redis URL (LOOPLINE_REDIS_URL).",
    )


class PostgresSettings(BaseSettings):
    """How to reach PostgreSQL (durable state)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_POSTGRES_", frozen=True)

    dsn: SecretStr = Field(
        default=SecretStr(f"postgresql://loopline@127.0.0.1:{DEFAULT_POSTGRES_PORT}/loopline"),
        description="PostgreSQL DSN (LOOPLINE_POSTGRES_DSN).",
    )


class Endpoints(BaseSettings):
    """The three endpoints every Loopline process may need."""

    model_config = SettingsConfigDict(frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)


def load_endpoints() -> Endpoints:
    """Read the endpoints from the environment (never at import time); the secrets they hold
    are registered, so `redact` keeps them out of logs and events."""
    endpoints = Endpoints(kafka=KafkaSettings(), redis=RedisSettings(), postgres=PostgresSettings())
    register_settings(endpoints)
    return endpoints
