"""Which network addresses a tool may reach: public ones, unless the context allows more.

Guards against server-side request forgery: a model asked to fetch `http://169.254.169.254/`
or a name that resolves to `10.0.0.5` must not reach the cloud metadata or the internal network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from loopline_events import ToolErrorKind

from loopline_tools._core import ToolFailure

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""IPv6 addresses of this prefix reach the IPv4 address in their last 32 bits."""


def address_class(ip: IPAddress) -> str | None:
    """Why `ip` is not public ("loopback", "private", ...), or `None` for a public address."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_class(embedded)
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        # What is left and still not global: shared (100.64/10), documentation, benchmarks.
        ("non-public", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_localhost_name(host: str) -> bool:
    """`localhost` and its subdomains, which resolve to loopback without asking DNS."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, without duplicates."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # EAI_AGAIN is a resolver hiccup; a name that does not exist will not appear later.
        retryable = exc.errno == socket.EAI_AGAIN
        message = f"could not resolve {host}: {exc.strerror or exc}"
        raise ToolFailure(ToolErrorKind.EXECUTION, message, retryable=retryable) from None
    found: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        found[ipaddress.ip_address(str(sockaddr[0]))] = None
    return list(found)


async def allowed_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for `host`, after checking every one of them.

    One forbidden address refuses the host: a name resolving to both a public and a private
    address is an old trick to slip past a check of the first answer only.
    """
    if not allow_private and is_localhost_name(host):
        raise _refused(host, "loopback", None)
    addresses = await resolve(host, port)
    if not addresses:
        raise ToolFailure(ToolErrorKind.EXECUTION, f"{host} resolves to no address")
    if not allow_private:
        for ip in addresses:
            kind = address_class(ip)
            if kind is not None:
                raise _refused(host, kind, ip)
    return addresses


def _refused(host: str, kind: str, ip: IPAddress | None) -> ToolFailure:
    where = host if ip is None or str(ip) == host else f"{host} ({ip})"
    article = "an" if kind[0] in "aeiou" else "a"
    message = (
        f"refusing to connect to {where}: {article} {kind} address; only public internet "
        "addresses are allowed"
    )
    return ToolFailure(ToolErrorKind.FORBIDDEN, message)
