"""The gateway's settings (LOOPLINE_GATEWAY_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GATEWAY_PORT = 18080


class GatewaySettings(BaseSettings):
    """Where the gateway listens and how it treats its clients (LOOPLINE_GATEWAY_*)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_GATEWAY_", frozen=True)

    host: str = Field(
        default="127.0.0.1",
        description="Address the API and the page listen on (LOOPLINE_GATEWAY_HOST); 0.0.0.0 "
        "in a container.",
    )
    port: int = Field(
        default=DEFAULT_GATEWAY_PORT,
        ge=0,
        le=65535,
        description="Port (LOOPLINE_GATEWAY_PORT); 0 takes any free one, written to the ready "
        "file as `api_port`.",
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 "
        "(LOOPLINE_GATEWAY_MAX_BODY_BYTES).",
    )
    clock_skew_s: float = Field(
        default=10.0,
        ge=0,
        description="How far apart the clocks of the hosts producing a run's events may be: a "
        "run's events are looked for in the log from its first recorded event less this "
        "(LOOPLINE_GATEWAY_CLOCK_SKEW_S).",
    )
    key_cache_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified API key is trusted without asking PostgreSQL again: "
        "a revoked key stops working within this (LOOPLINE_GATEWAY_KEY_CACHE_S).",
    )
    keepalive_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between comments on an idle event stream, so proxies keep it "
        "open and a gone client is noticed (LOOPLINE_GATEWAY_KEEPALIVE_S).",
    )
    follower_queue: int = Field(
        default=10_000,
        ge=100,
        description="Events an event stream may have waiting for a slow client before it is "
        "closed (the client resumes from its Last-Event-ID) (LOOPLINE_GATEWAY_FOLLOWER_QUEUE).",
    )
    history_readers: int = Field(
        default=4,
        ge=1,
        description="Kafka readers catching event streams up with a run's past, shared by all "
        "streams (LOOPLINE_GATEWAY_HISTORY_READERS).",
    )
    secure_cookies: bool = Field(
        default=False,
        description="Mark the page's session cookie Secure (set it when the gateway is served "
        "over HTTPS) (LOOPLINE_GATEWAY_SECURE_COOKIES).",
    )
