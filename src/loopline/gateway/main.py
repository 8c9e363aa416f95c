"""The gateway's one wiring point: its schema, its Kafka client and feed, its HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from loopline_bus import KafkaBus
from loopline_runtime import (
    PROCESS_HEALTH,
    Endpoints,
    Stop,
    load_endpoints,
    load_profiles,
    load_signing,
    open_schema,
    schema_name,
)

from loopline.gateway._app import create_app
from loopline.gateway._core import PRODUCER, Gateway, Schemas
from loopline.gateway._feed import RunFeed
from loopline.gateway._keys import MIGRATIONS, KeyStore
from loopline.gateway._settings import GatewaySettings

log = logging.getLogger("loopline.gateway")


async def open_keys(endpoints: Endpoints) -> tuple[KeyStore, Stop]:
    """The gateway's key store (its schema migrated) and the function that closes it."""
    pool, schema = await open_schema(endpoints, "gateway", MIGRATIONS, max_size=2)
    return KeyStore(pool, schema), pool.close


async def start(
    endpoints: Endpoints | None = None, settings: GatewaySettings | None = None
) -> Stop:
    """Connect, migrate, follow the run topics, serve HTTP; return the function that stops."""
    endpoints = endpoints or load_endpoints()
    settings = settings or GatewaySettings()
    namespace = endpoints.kafka.topic_prefix
    pool, schema = await open_schema(endpoints, "gateway", MIGRATIONS, max_size=16)
    schemas = Schemas(schema, schema_name("memory", namespace), schema_name("recovery", namespace))
    bus = KafkaBus(
        settings=endpoints.kafka, client_id=PRODUCER, signing_key=load_signing().signing_key()
    )
    await bus.ensure_topics()
    await bus.start()
    feed = RunFeed(
        endpoints.kafka,
        readers=settings.history_readers,
        follower_queue=settings.follower_queue,
    )
    await feed.start()
    gateway = Gateway(
        settings=settings,
        pool=pool,
        schemas=schemas,
        bus=bus,
        feed=feed,
        keys=KeyStore(pool, schema, cache_s=settings.key_cache_s),
        profiles=load_profiles(),
    )
    listener = _listen(settings.host, settings.port)
    config = uvicorn.Config(
        create_app(gateway),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        # Longer than clients' and proxies' idle pools keep a connection (uvicorn's 5 s default
        # races a client reusing one the moment the server closes it).
        timeout_keep_alive=75,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]), name="gateway-http")
    while not server.started:
        if serving.done():
            await serving  # raises what stopped it
        await asyncio.sleep(0.02)
    port = listener.getsockname()[1]
    PROCESS_HEALTH.api_port = port
    log.info("gateway serving http://%s:%d/", settings.host, port)

    async def stop() -> None:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await feed.stop()
        await bus.stop()
        await pool.close()

    return stop


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); OSError naming the address."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve the gateway on {host}:{port}: {exc}") from exc
    sock.setblocking(False)
    return sock
