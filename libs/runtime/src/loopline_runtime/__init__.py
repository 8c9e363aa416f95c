"""Runtime pieces shared by every Loopline process: settings, agent profiles, logging,
PostgreSQL migrations, tracing, health and the service lifecycle (with its HTTP endpoints)."""

from loopline_runtime._health import (
    PROCESS_HEALTH,
    Health,
    Phase,
    Probe,
    register_probe,
    unregister_probe,
)
from loopline_runtime._http import HttpSettings, StatusServer
from loopline_runtime._lifecycle import (
    READY_FILE_VARIABLE,
    ReadyInfo,
    Stop,
    read_ready_file,
    serve_until_signalled,
    write_ready_file,
)
from loopline_runtime._logging import configure_logging
from loopline_runtime._postgres import (
    POSTGRES_UNAVAILABLE,
    PostgresUnavailableError,
    migrate,
    open_schema,
    postgres_unavailable_is_retryable,
    schema_name,
)
from loopline_runtime._profiles import (
    AGENTS_FILE_VARIABLE,
    AgentProfile,
    ProfileError,
    load_profiles,
    parse_profiles,
)
from loopline_runtime._secrets import redact, register_secrets, register_settings
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
from loopline_runtime._tasks import stop_task
from loopline_runtime._tracing import configure_tracing

__all__ = [
    "AGENTS_FILE_VARIABLE",
    "DEFAULT_KAFKA_CONTROLLER_PORT",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_POSTGRES_PORT",
    "DEFAULT_REDIS_PORT",
    "POSTGRES_UNAVAILABLE",
    "PROCESS_HEALTH",
    "READY_FILE_VARIABLE",
    "AgentProfile",
    "Endpoints",
    "Health",
    "HttpSettings",
    "KafkaSettings",
    "Phase",
    "PostgresSettings",
    "PostgresUnavailableError",
    "Probe",
    "ProfileError",
    "ReadyInfo",
    "RedisSettings",
    "StatusServer",
    "Stop",
    "configure_logging",
    "configure_tracing",
    "load_endpoints",
    "load_profiles",
    "migrate",
    "open_schema",
    "parse_profiles",
    "postgres_unavailable_is_retryable",
    "read_ready_file",
    "redact",
    "register_probe",
    "register_secrets",
    "register_settings",
    "schema_name",
    "serve_until_signalled",
    "stop_task",
    "unregister_probe",
    "write_ready_file",
]
