"""The chaos suite: concurrent runs while services are killed and servers restarted.

Each scenario starts the four services in a namespace of their own, on a private Kafka, Redis
and PostgreSQL (the shared ones serve every other test), submits runs that record a side
effect at every step, injects its faults in the middle, and accounts for every run: completed,
failed with a stated reason, or lost; every side effect executed once or more; and how long
the runs in flight waited after each fault. Three scenarios run on a cluster of three brokers:
one broker killed, the active controller killed, and a rolling restart (after which every
run's replay must equal memory's state). `python -m loopline_testing.chaos` (`make chaos`)
plays the full set and prints the table; tests/chaos plays a smaller one.
"""

from loopline_testing.chaos._faults import (
    Fault,
    FlushRedis,
    Injected,
    KillBroker,
    KillServices,
    RestartBroker,
    RestartKafka,
    StopPostgres,
    Target,
)
from loopline_testing.chaos._infra import PrivateInfra, free_ports
from loopline_testing.chaos._report import (
    BROKER_TARGET_S,
    WAIT_TARGET_S,
    FaultReport,
    ScenarioReport,
    render_table,
)
from loopline_testing.chaos._scenario import Scenario, check_replays, run_scenario
from loopline_testing.chaos._suite import FULL, QUICK, QUICK_CLUSTER, run_suite, scaled

__all__ = [
    "BROKER_TARGET_S",
    "FULL",
    "QUICK",
    "QUICK_CLUSTER",
    "WAIT_TARGET_S",
    "Fault",
    "FaultReport",
    "FlushRedis",
    "Injected",
    "KillBroker",
    "KillServices",
    "PrivateInfra",
    "RestartBroker",
    "RestartKafka",
    "Scenario",
    "ScenarioReport",
    "StopPostgres",
    "Target",
    "check_replays",
    "free_ports",
    "render_table",
    "run_scenario",
    "run_suite",
    "scaled",
]
