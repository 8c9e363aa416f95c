"""One Loopline with its gateway per test module (each module its own namespace), keys, and
a browser for the page."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.gateway import Keys
from playwright.async_api import BrowserContext, async_playwright


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


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    """Debian's chromium, headless, with an empty profile of its own."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is part of the test set-up (.ci/run and make test install it)"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            context.set_default_timeout(60_000)
            try:
                yield context
            finally:
                await context.close()
