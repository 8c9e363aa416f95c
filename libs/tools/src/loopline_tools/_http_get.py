"""`http_get`: fetch a public URL, refusing private networks, with the address pinned.

The host is resolved once and every address checked; the request then goes to a checked
address (with the real name in the Host header and for TLS), so a DNS answer that changes
between the check and the connection cannot steer the request to an internal address.
"""

from __future__ import annotations

import httpx
from loopline_events import ToolErrorKind, parse_retry_after
from pydantic import BaseModel, Field, field_validator

from loopline_tools._addresses import IPAddress, allowed_addresses
from loopline_tools._core import Effect, ToolContext, ToolFailure
from loopline_tools._decorator import tool

MAX_REDIRECTS = 3
_MAX_ADDRESSES = 4
"""Resolved addresses tried in turn when connecting fails."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_BINARY_TYPES = frozenset(
    {"application/octet-stream", "application/pdf", "application/zip", "application/gzip"}
)
_HEADERS = {
    "User-Agent": "loopline-http-get/0.1",
    "Accept": "*/*",
    # Compressed bodies can expand a thousandfold before max_bytes could stop them.
    "Accept-Encoding": "identity",
}


class HttpGetArgs(BaseModel):
    """Arguments of `http_get`."""

    url: str = Field(
        min_length=1, max_length=2048, description="The http:// or https:// URL to fetch."
    )
    max_bytes: int = Field(
        default=100_000, ge=1, le=1_000_000, description="Read at most this many bytes of body."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parse_url(value)
        return value


@tool(name="http_get", effect=Effect.IDEMPOTENT, timeout_s=15.0)
async def http_get(args: HttpGetArgs, ctx: ToolContext) -> str:
    """Fetch a public web page or API with HTTP GET and return the status, content type and
    text of the body. Follows up to 3 redirects; private and local network addresses are
    refused."""
    return await fetch(
        parse_url(args.url), args.max_bytes, allow_private=ctx.allow_private_networks
    )


def parse_url(value: str) -> httpx.URL:
    """`value` as an http(s) URL with a host; `ValueError` otherwise."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs can be fetched")
    if not url.host:
        raise ValueError("the URL has no host")
    return url


async def fetch(
    url: httpx.URL,
    max_bytes: int,
    *,
    allow_private: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """GET `url`, following up to `MAX_REDIRECTS` redirects and checking every hop."""
    async with httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False, timeout=_TIMEOUT
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            host = url.raw_host.decode("ascii")
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = await allowed_addresses(host, port, allow_private=allow_private)
            result = await _get_from_any(client, url, addresses, max_bytes)
            if isinstance(result, str):
                return result
            url = result
    message = f"too many redirects: more than {MAX_REDIRECTS}, last to {url}"
    raise ToolFailure(ToolErrorKind.EXECUTION, message)


async def _get_from_any(
    client: httpx.AsyncClient, url: httpx.URL, addresses: list[IPAddress], max_bytes: int
) -> str | httpx.URL:
    """The rendered response, or the URL it redirects to; the next address if one refuses."""
    failure: httpx.ConnectError | None = None
    for ip in addresses[:_MAX_ADDRESSES]:
        try:
            return await _get(client, url, ip, max_bytes)
        except httpx.ConnectError as exc:  # nothing was sent: trying elsewhere is safe
            failure = exc
    message = f"could not connect to {url.host}: {failure}"
    raise ToolFailure(ToolErrorKind.EXECUTION, message, retryable=True)


async def _get(
    client: httpx.AsyncClient, url: httpx.URL, ip: IPAddress, max_bytes: int
) -> str | httpx.URL:
    host = url.raw_host.decode("ascii")
    headers = {**_HEADERS, "Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    pinned = url.copy_with(host=str(ip))
    try:
        async with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
            return await _read(response, url, max_bytes)
    except httpx.ConnectError:
        raise
    except httpx.TransportError as exc:
        message = f"fetching {url} failed: {type(exc).__name__}: {exc}"
        raise ToolFailure(ToolErrorKind.EXECUTION, message, retryable=True) from None
    except httpx.HTTPError as exc:
        message = f"fetching {url} failed: {type(exc).__name__}: {exc}"
        raise ToolFailure(ToolErrorKind.EXECUTION, message) from None


async def _read(response: httpx.Response, url: httpx.URL, max_bytes: int) -> str | httpx.URL:
    status = response.status_code
    if status in _REDIRECT_STATUSES and "location" in response.headers:
        return _redirect_target(url, response.headers["location"])
    if not response.is_success:
        message = f"HTTP {status} {response.reason_phrase} from {url}"
        retryable = status == 429 or status >= 500
        raise ToolFailure(
            ToolErrorKind.EXECUTION,
            message,
            retryable=retryable,
            retry_after=parse_retry_after(response.headers.get("retry-after"))
            if retryable
            else None,
        )
    body, truncated = await _read_body(response, max_bytes)
    content_type = response.headers.get("content-type", "")
    if _looks_binary(content_type, body):
        text = f"[binary body of {len(body)} bytes not shown]"
    else:
        text = _decode(body, response.charset_encoding)
    if truncated:
        text += f"\n[body truncated: only the first {max_bytes} bytes were read]"
    return f"HTTP {status} {content_type or '(no content type)'}\n\n{text}"


def _redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    try:
        return parse_url(str(url.join(location)))
    except (ValueError, httpx.InvalidURL) as exc:
        message = f"{url} redirects to {location!r}, which cannot be followed: {exc}"
        raise ToolFailure(ToolErrorKind.EXECUTION, message) from None


async def _read_body(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """At most `max_bytes` of the body, and whether there was more."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = max_bytes - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False


def _looks_binary(content_type: str, body: bytes) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith(("image/", "audio/", "video/", "font/")) or media in _BINARY_TYPES:
        return True
    return b"\x00" in body[:1024]


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
