"""Brings up a real Apache Kafka (KRaft), Redis, PostgreSQL and Prometheus for development and
tests.

`loopline infra up|down|status` and the pytest plugin both drive `Infra`.
"""

from loopline_infra._acls import (
    ADMIN,
    DEFAULT_TENANT,
    OPERATOR,
    SERVICE_PRINCIPALS,
    Acl,
    check_tenant,
    client_principal,
    namespace_acls,
)
from loopline_infra._components import DEFAULT_PROMETHEUS_PORT, Component, Ports
from loopline_infra._compose import provision_servers, write_compose_secrets
from loopline_infra._credentials import KEYS_READERS, CredentialStore
from loopline_infra._kafka import Kafka
from loopline_infra._kafka_access import KafkaAccess
from loopline_infra._manager import (
    BROKER_CHOICES,
    ComponentStatus,
    Infra,
    default_ports,
    recorded_brokers,
)
from loopline_infra._paths import KAFKA_VERSION, Paths, default_paths
from loopline_infra._postgres import Postgres
from loopline_infra._process import InfraError
from loopline_infra._prometheus import Prometheus, render_prometheus_config
from loopline_infra._provision import (
    admin_settings,
    as_admin,
    create_topics,
    grant_namespace,
    grant_tenant,
    local_admin,
    principal_settings,
    provision_namespace,
    revoke_namespace,
    tenants_of,
)
from loopline_infra._quorum import Quorum, QuorumError, describe_quorum
from loopline_infra._redis import Redis
from loopline_infra._services import GATEWAY, PROCESSES, SERVICES, Services, ServiceStatus

__all__ = [
    "ADMIN",
    "BROKER_CHOICES",
    "DEFAULT_PROMETHEUS_PORT",
    "DEFAULT_TENANT",
    "GATEWAY",
    "KAFKA_VERSION",
    "KEYS_READERS",
    "OPERATOR",
    "PROCESSES",
    "SERVICES",
    "SERVICE_PRINCIPALS",
    "Acl",
    "Component",
    "ComponentStatus",
    "CredentialStore",
    "Infra",
    "InfraError",
    "Kafka",
    "KafkaAccess",
    "Paths",
    "Ports",
    "Postgres",
    "Prometheus",
    "Quorum",
    "QuorumError",
    "Redis",
    "ServiceStatus",
    "Services",
    "admin_settings",
    "as_admin",
    "check_tenant",
    "client_principal",
    "create_topics",
    "default_paths",
    "default_ports",
    "describe_quorum",
    "grant_namespace",
    "grant_tenant",
    "local_admin",
    "namespace_acls",
    "principal_settings",
    "provision_namespace",
    "provision_servers",
    "recorded_brokers",
    "render_prometheus_config",
    "revoke_namespace",
    "tenants_of",
    "write_compose_secrets",
]
