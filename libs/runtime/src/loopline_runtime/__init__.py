"""Runtime pieces shared by every Loopline process: settings, agent profiles, logging,
PostgreSQL migrations and the service lifecycle."""

from loopline_runtime._lifecycle import READY_FILE_VARIABLE, Stop, serve_until_signalled
from loopline_runtime._logging import configure_logging
from loopline_runtime._postgres import migrate, open_schema, schema_name
from loopline_runtime._profiles import (
    AGENTS_FILE_VARIABLE,
    AgentProfile,
    ProfileError,
    load_profiles,
    parse_profiles,
)
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
    "AGENTS_FILE_VARIABLE",
    "DEFAULT_KAFKA_CONTROLLER_PORT",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_POSTGRES_PORT",
    "DEFAULT_REDIS_PORT",
    "READY_FILE_VARIABLE",
    "AgentProfile",
    "Endpoints",
    "KafkaSettings",
    "PostgresSettings",
    "ProfileError",
    "RedisSettings",
    "Stop",
    "configure_logging",
    "load_endpoints",
    "load_profiles",
    "migrate",
    "open_schema",
    "parse_profiles",
    "schema_name",
    "serve_until_signalled",
]
