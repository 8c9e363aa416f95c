"""The run inspector in a real browser (Debian's chromium, headless, driven by Playwright):
submit a goal from the page and watch it complete live, read its timeline, its state at step
2, fork it after step 1, and redrive a dead letter as an operator."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from loopline_events import CONTEXTS
from loopline_testing import System
from loopline_testing.gateway import Keys
from playwright.async_api import BrowserContext, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


async def sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#key", key)
    await page.click("#sign-in")
    await expect(page.locator("#runs")).to_be_visible()


async def test_submit_watch_inspect_and_fork_a_run_from_the_page(
    gateway_system: System, keys: Keys, browser: BrowserContext
) -> None:
    base = gateway_system.gateway_url
    page = await browser.new_page()
    await sign_in(page, base, keys.alice)
    await expect(page.locator("#tenant")).to_have_text("acme")

    await page.fill("#goal", "Compute 17 + 25, then multiply the result by 3")
    await page.click("#submit")
    await page.wait_for_url(f"{base}/ui/runs/*")
    run_id = page.url.rsplit("/", 1)[-1]
    # Live: the events arrive over the page's event stream, and the header follows them.
    events = page.locator("#events li")
    await expect(page.locator('#events li[data-type="RunCompleted"]')).to_have_count(1)
    await expect(page.locator("#run-status")).to_have_text("completed")
    await expect(page.locator("#answer")).to_contain_text("126")
    assert await events.count() >= 6
    assert await page.locator("#events").get_attribute("data-state") == "ended"

    steps = page.locator("#steps tr.step")
    await expect(steps).to_have_count(3)
    await expect(steps.nth(0)).to_contain_text("calculator")
    await expect(steps.nth(0)).to_contain_text("succeeded")
    await expect(steps.nth(2)).to_contain_text("answer")

    await page.click('#steps tr[data-step="2"] a.state-link')
    await expect(page.locator("#state-step")).to_contain_text("2 of")
    await expect(page.locator("#state-status")).to_have_text("running")
    await expect(page.locator("#messages")).to_contain_text("42")

    await page.goto(f"{base}/ui/runs/{run_id}")
    await page.click('#steps button.fork[data-step="1"]')
    await page.wait_for_url(lambda url: run_id not in url and "/ui/runs/" in url)
    await expect(page.locator("#run-status")).to_have_text("completed")
    await expect(page.locator("#answer")).to_contain_text("126")
    # The steps are a section of their own, refreshed by its own request after the end.
    fork_steps = page.locator("#steps tr.step")
    await expect(fork_steps.last).to_contain_text("answer")
    assert await fork_steps.count() >= 2

    await page.goto(f"{base}/ui/runs/{run_id}/rerun")
    await expect(page.locator("#verdict")).to_contain_text("no divergence")


async def test_an_end_told_while_the_header_is_being_swapped_still_refreshes_it(
    gateway_system: System, keys: Keys, browser: BrowserContext
) -> None:
    """The page's sections refresh on `run-event` and `run-ended`; one told while a section's
    previous answer is being swapped in must still be heard (it is the last one a run sends)."""
    base = gateway_system.gateway_url
    page = await browser.new_page()
    await sign_in(page, base, keys.alice)
    await page.fill("#goal", "What is 6 * 7?")
    await page.click("#submit")
    await page.wait_for_url(f"{base}/ui/runs/*")
    await expect(page.locator("#events")).to_have_attribute("data-state", "ended")
    await expect(page.locator("#run-status")).to_have_text("completed")

    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url.rsplit("/", 1)[-1]))
    # Tell `run-ended` from inside the header's swap that `run-event` causes: exactly when a
    # section whose content were replaced whole would have no listener. The steps' request may
    # then still be in flight and be replaced (aborted, asked again); either way each section
    # must ask once more after the end.
    await page.evaluate(
        """() => {
            let told = false;
            document.body.addEventListener("htmx:afterSwap", (event) => {
                if (!told && event.detail.pathInfo.requestPath.endsWith("/head")) {
                    told = true;
                    document.body.dispatchEvent(new CustomEvent("run-ended"));
                }
            });
            document.body.dispatchEvent(new CustomEvent("run-event"));
        }"""
    )
    for _ in range(100):
        if asked.count("head") >= 2 and asked.count("steps") >= 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # nothing more is asked once both have answered the end
    assert sorted(asked) == ["head", "head", "steps", "steps"]
    await expect(page.locator("#run-status")).to_have_text("completed")


async def test_an_operator_redrives_a_dead_letter_from_the_page(
    gateway_system: System, keys: Keys, browser: BrowserContext
) -> None:
    run_id = f"poison-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(gateway_system.kcat_produce, CONTEXTS.name, run_id, b"\x00not json")
    page = await browser.new_page()
    await sign_in(page, gateway_system.gateway_url, keys.operator)
    # The letter of the planner, which reads agent.contexts (recovery then fails the run: any
    # letter that command may earn is another row of the same run).
    row = page.locator(f'tr.letter:has(a[href="/ui/runs/{run_id}"])').filter(
        has=page.get_by_role("cell", name=CONTEXTS.name, exact=True)
    )
    for _ in range(60):  # recovery records it within moments; the page shows what is recorded
        await page.goto(f"{gateway_system.gateway_url}/ui/dead-letters?status=parked")
        if await row.count():
            break
        await asyncio.sleep(0.5)
    await expect(row).to_have_attribute("data-status", "parked")
    await row.locator("button.redrive").click()
    letter = await row.get_attribute("data-letter")
    redriven = page.locator(f'tr[data-letter="{letter}"]')
    await expect(redriven).to_have_attribute("data-status", "redriven")
    await expect(redriven.locator(".letter-status")).to_have_text("redriven")
