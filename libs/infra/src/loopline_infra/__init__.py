"""Brings up a real Apache Kafka (KRaft), Redis, PostgreSQL and Prometheus for development and
tests.

`loopline infra up|down|status` and the pytest plugin both drive `Infra`.
"""

from loopline_infra._components import DEFAULT_PROMETHEUS_PORT, Ports
from loopline_infra._manager import ComponentStatus, Infra, default_ports
from loopline_infra._paths import KAFKA_VERSION, Paths, default_paths
from loopline_infra._process import InfraError
from loopline_infra._prometheus import Prometheus, render_prometheus_config
from loopline_infra._services import GATEWAY, PROCESSES, SERVICES, Services, ServiceStatus

__all__ = [
    "DEFAULT_PROMETHEUS_PORT",
    "GATEWAY",
    "KAFKA_VERSION",
    "PROCESSES",
    "SERVICES",
    "ComponentStatus",
    "Infra",
    "InfraError",
    "Paths",
    "Ports",
    "Prometheus",
    "ServiceStatus",
    "Services",
    "default_paths",
    "default_ports",
    "render_prometheus_config",
]
