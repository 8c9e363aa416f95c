"""Loopline's gateway: an authenticated HTTP API (and SSE) for tenants' applications, and a
run inspector in the browser. It talks to the services only through Kafka and their read APIs.

`loopline serve gateway` runs it; `loopline keys create --tenant T` makes its API keys.
"""

from loopline.gateway._app import create_app
from loopline.gateway._core import Gateway
from loopline.gateway._keys import KeyStore, Principal, Role
from loopline.gateway._settings import DEFAULT_GATEWAY_PORT, GatewaySettings

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "Gateway",
    "GatewaySettings",
    "KeyStore",
    "Principal",
    "Role",
    "create_app",
]
