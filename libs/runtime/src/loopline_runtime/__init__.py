"""Runtime pieces shared by every Loopline process: settings, agent profiles, rate limits and
quotas, the price table, logging, PostgreSQL migrations, tracing, health and the service
lifecycle (with its HTTP endpoints)."""

from loopline_runtime._errors import ConfigurationError, settings_problem
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
from loopline_runtime._limits import (
    ANY_TENANT,
    LIMITS_FILE_VARIABLE,
    Limits,
    LimitsError,
    Quota,
    RateLimit,
    TenantLimits,
    load_limits,
    parse_limits,
)
from loopline_runtime._logging import configure_logging
from loopline_runtime._mcp_servers import (
    McpServerConfig,
    McpServersError,
    McpToolSettings,
    allows,
    expand,
    mcp_tool_name,
    parse_mcp_servers,
    server_of,
)
from loopline_runtime._postgres import (
    POSTGRES_UNAVAILABLE,
    PostgresUnavailableError,
    migrate,
    open_schema,
    postgres_unavailable_is_retryable,
    schema_name,
)
from loopline_runtime._prices import FREE, PRICE_TABLE, Price, price_of
from loopline_runtime._profiles import (
    AGENTS_FILE_VARIABLE,
    AgentProfile,
    ProfileError,
    load_mcp_servers,
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
from loopline_runtime._signing import SigningSettings, load_signing
from loopline_runtime._tasks import stop_task
from loopline_runtime._tracing import configure_tracing

__all__ = [
    "AGENTS_FILE_VARIABLE",
    "ANY_TENANT",
    "DEFAULT_KAFKA_CONTROLLER_PORT",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_POSTGRES_PORT",
    "DEFAULT_REDIS_PORT",
    "FREE",
    "LIMITS_FILE_VARIABLE",
    "POSTGRES_UNAVAILABLE",
    "PRICE_TABLE",
    "PROCESS_HEALTH",
    "READY_FILE_VARIABLE",
    "AgentProfile",
    "ConfigurationError",
    "Endpoints",
    "Health",
    "HttpSettings",
    "KafkaSettings",
    "Limits",
    "LimitsError",
    "McpServerConfig",
    "McpServersError",
    "McpToolSettings",
    "Phase",
    "PostgresSettings",
    "PostgresUnavailableError",
    "Price",
    "Probe",
    "ProfileError",
    "Quota",
    "RateLimit",
    "ReadyInfo",
    "RedisSettings",
    "SigningSettings",
    "StatusServer",
    "Stop",
    "TenantLimits",
    "allows",
    "configure_logging",
    "configure_tracing",
    "expand",
    "load_endpoints",
    "load_limits",
    "load_mcp_servers",
    "load_profiles",
    "load_signing",
    "mcp_tool_name",
    "migrate",
    "open_schema",
    "parse_limits",
    "parse_mcp_servers",
    "parse_profiles",
    "postgres_unavailable_is_retryable",
    "price_of",
    "read_ready_file",
    "redact",
    "register_probe",
    "register_secrets",
    "register_settings",
    "schema_name",
    "serve_until_signalled",
    "server_of",
    "settings_problem",
    "stop_task",
    "unregister_probe",
    "write_ready_file",
]
