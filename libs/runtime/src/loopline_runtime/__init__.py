"""Runtime pieces shared by every Loopline process: settings and logging."""

from loopline_runtime._logging import configure_logging
from loopline_runtime._settings import (
    DEFAULT_KAFKA_CONTROLLER_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_POSTGRES_PORT,
    DEFAULT_REDIS_PORT,
    Endpoints,
    KafkaSettings,
    PostgresSettings,
    RedisSettings,
    load_endpoints,
)

__all__ = [
    "DEFAULT_KAFKA_CONTROLLER_PORT",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_POSTGRES_PORT",
    "DEFAULT_REDIS_PORT",
    "Endpoints",
    "KafkaSettings",
    "PostgresSettings",
    "RedisSettings",
    "configure_logging",
    "load_endpoints",
]
