"""One Loopline with its gateway per test module (each module its own namespace), and keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.gateway import Keys


@pytest.fixture(scope="module")
def gateway_system(loopline_endpoints: Endpoints) -> Iterator[System]:
    """The four services and the gateway, for the whole module."""
    with running_system(loopline_endpoints, gateway=True) as system:
        yield system


@pytest.fixture(scope="module")
def keys(gateway_system: System) -> Keys:
    """Keys of tenants `acme` and `globex`, and an operator of `ops`."""
    return Keys(
        alice=gateway_system.create_key("acme"),
        bob=gateway_system.create_key("globex"),
        operator=gateway_system.create_key("ops", role="operator"),
    )
