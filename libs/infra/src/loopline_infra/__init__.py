"""Brings up a real Apache Kafka (KRaft), Redis, PostgreSQL and Prometheus for development and
tests.

`loopline infra up|down|status` and the pytest plugin both drive `Infra`.
"""

from loopline_infra._components import DEFAULT_PROMETHEUS_PORT, Ports
from loopline_infra._kafka import Kafka
from loopline_infra._manager import (
    BROKER_CHOICES,
    ComponentStatus,
    Infra,
    default_ports,
    recorded_brokers,
)
from loopline_infra._paths import KAFKA_VERSION, Paths, default_paths
from loopline_infra._process import InfraError
from loopline_infra._prometheus import Prometheus, render_prometheus_config
from loopline_infra._quorum import Quorum, QuorumError, describe_quorum
from loopline_infra._services import GATEWAY, PROCESSES, SERVICES, Services, ServiceStatus

__all__ = [
    "BROKER_CHOICES",
    "DEFAULT_PROMETHEUS_PORT",
    "GATEWAY",
    "KAFKA_VERSION",
    "PROCESSES",
    "SERVICES",
    "ComponentStatus",
    "Infra",
    "InfraError",
    "Kafka",
    "Paths",
    "Ports",
    "Prometheus",
    "Quorum",
    "QuorumError",
    "ServiceStatus",
    "Services",
    "default_paths",
    "default_ports",
    "describe_quorum",
    "recorded_brokers",
    "render_prometheus_config",
]
