"""The address guard of `http_get`: which addresses are private, every hop re-checked, and the
checked address pinned. Pure logic: a mock transport answers, nothing leaves the process."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from loopline_events import ToolErrorKind
from loopline_tools import ToolFailure
from loopline_tools._addresses import address_class
from loopline_tools._http_get import fetch, parse_url

PUBLIC = "93.184.216.34"
OTHER_PUBLIC = "93.184.216.35"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("fec0::1", "site-local"),
        ("::127.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_classes(address: str, kind: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Answers for the running loop's getaddrinfo, by host name."""
    answers: dict[str, list[str]] = {}

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a real connection was attempted to {request.url}")

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", refuse)


def mock(
    respond: Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(request)

    return httpx.MockTransport(handler), seen


async def get(url: str, transport: httpx.MockTransport, allow_private: bool = False) -> str:
    return await fetch(parse_url(url), 1000, allow_private=allow_private, transport=transport)


async def test_the_request_goes_to_the_checked_address_under_the_real_name(
    resolver: dict[str, list[str]],
) -> None:
    resolver["example.org"] = [PUBLIC]
    transport, seen = mock(lambda r: httpx.Response(200, text="ok"))
    assert (
        await get("https://example.org/page?q=1", transport)
        == "HTTP 200 text/plain; charset=utf-8\n\nok"
    )
    (request,) = seen
    assert str(request.url) == f"https://{PUBLIC}/page?q=1"
    assert request.headers["host"] == "example.org"
    assert request.extensions["sni_hostname"] == "example.org"


async def test_one_private_answer_among_public_ones_refuses_the_host(
    resolver: dict[str, list[str]],
) -> None:
    resolver["sneaky.example"] = [PUBLIC, "10.1.2.3"]
    transport, seen = mock(lambda r: httpx.Response(200))
    with pytest.raises(ToolFailure) as raised:
        await get("http://sneaky.example/", transport)
    assert raised.value.kind is ToolErrorKind.FORBIDDEN
    assert "sneaky.example (10.1.2.3): a private address" in raised.value.message
    assert seen == []


def redirect_to(location: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(302, headers={"Location": location})


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/",
        "http://internal.example/admin",
        "//[::1]/",
        "http://localhost/",
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(
    resolver: dict[str, list[str]], target: str
) -> None:
    resolver["example.org"] = [PUBLIC]
    resolver["internal.example"] = ["192.168.0.10"]
    transport, seen = mock(redirect_to(target))
    with pytest.raises(ToolFailure) as raised:
        await get("http://example.org/start", transport)
    assert raised.value.kind is ToolErrorKind.FORBIDDEN
    assert [str(r.url) for r in seen] == [f"http://{PUBLIC}/start"]


async def test_a_redirect_elsewhere_is_resolved_again(resolver: dict[str, list[str]]) -> None:
    resolver["example.org"] = [PUBLIC]
    resolver["cdn.example"] = [OTHER_PUBLIC]

    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "example.org":
            return httpx.Response(301, headers={"Location": "https://cdn.example/file"})
        return httpx.Response(200, text="moved here", headers={"Content-Type": "text/plain"})

    transport, seen = mock(respond)
    assert await get("http://example.org/file", transport) == "HTTP 200 text/plain\n\nmoved here"
    assert [str(r.url) for r in seen] == [f"http://{PUBLIC}/file", f"https://{OTHER_PUBLIC}/file"]
    assert seen[1].headers["host"] == "cdn.example"


async def test_the_next_address_is_tried_when_one_refuses_to_connect(
    resolver: dict[str, list[str]],
) -> None:
    resolver["example.org"] = [PUBLIC, OTHER_PUBLIC]

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, text="second")

    transport, seen = mock(respond)
    assert (await get("http://example.org/", transport)).endswith("\n\nsecond")
    assert [r.url.host for r in seen] == [PUBLIC, OTHER_PUBLIC]


async def test_an_unknown_name_is_not_retryable(resolver: dict[str, list[str]]) -> None:
    transport, seen = mock(lambda r: httpx.Response(200))
    with pytest.raises(ToolFailure) as raised:
        await get("http://no-such-host.example/", transport)
    assert raised.value.kind is ToolErrorKind.EXECUTION
    assert raised.value.message.startswith("could not resolve no-such-host.example")
    assert not raised.value.retryable
    assert seen == []


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (429, True), (502, True)])
async def test_http_errors_say_whether_a_retry_can_help(status: int, retryable: bool) -> None:
    transport, _ = mock(lambda r: httpx.Response(status))
    with pytest.raises(ToolFailure) as raised:
        await get(f"http://{PUBLIC}/", transport)
    assert raised.value.message.startswith(f"HTTP {status} ")
    assert raised.value.retryable is retryable


async def test_a_binary_body_is_not_dumped_on_the_model() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00"
    transport, _ = mock(
        lambda r: httpx.Response(200, content=png, headers={"Content-Type": "image/png"})
    )
    assert await get(f"http://{PUBLIC}/logo.png", transport) == (
        "HTTP 200 image/png\n\n[binary body of 10 bytes not shown]"
    )
