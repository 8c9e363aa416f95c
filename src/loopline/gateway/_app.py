"""The gateway's ASGI application: the API, the page and its static files, one error shape."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from loopline_memory.history import NoGoalError, StepNotReachedError
from loopline_runtime import POSTGRES_UNAVAILABLE
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopline import __version__
from loopline.gateway import _api, _humans, _pages
from loopline.gateway._core import Gateway, NotFoundError, RefusedError
from loopline.gateway._metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("loopline.gateway")

STATIC = Path(__file__).parent / "static"


class BodyLimit:
    """Refuses a request body larger than `limit` bytes with 413, before any of it is used."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLargeError:
            await _too_large(self.limit)(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


def _too_large(limit: int) -> Response:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def create_app(gateway: Gateway) -> FastAPI:
    """The gateway's application over `gateway`'s use cases."""
    app = FastAPI(
        title="Loopline gateway",
        version=__version__,
        description="Submit goals to Loopline's agents, follow their runs live, inspect them; "
        "people approve or deny the tool calls held for them and message running agents; "
        "operators redrive dead letters. Authenticate with `Authorization: Bearer <API key>` "
        "(`loopline keys create --tenant T`).",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.include_router(_api.router)
    app.include_router(_humans.router)
    app.include_router(_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "other")
        REQUESTS.labels(request.method, template, f"{response.status_code // 100}xx").inc()
        REQUEST_SECONDS.labels(request.method, template).observe(time.perf_counter() - started)
        return response

    _errors(app)
    app.add_middleware(BodyLimit, limit=gateway.settings.max_body_bytes)
    return app


def _errors(app: FastAPI) -> None:
    """Every error a client can cause is a 4xx with a message (a page for the page's paths);
    anything else a bare 500."""

    def reply(
        request: Request, status: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        if request.url.path.startswith("/ui"):
            return _pages.templates.TemplateResponse(
                request,
                "error.html",
                {"status": status, "detail": detail, "principal": None},
                status_code=status,
                headers=headers,
            )
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(_pages.SignInRequiredError)
    async def sign_in(request: Request, exc: _pages.SignInRequiredError) -> Response:
        return _pages.sign_in_redirect(request)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        what = "dead letter" if "/dead-letters" in request.url.path else "run"
        return reply(request, 404, f"no {what} {exc.args[0] if exc.args else ''}".strip())

    @app.exception_handler(StepNotReachedError)
    async def no_step(request: Request, exc: StepNotReachedError) -> Response:
        return reply(request, 404, str(exc))

    @app.exception_handler(NoGoalError)
    async def no_goal(request: Request, exc: NoGoalError) -> Response:
        return reply(request, 409, str(exc))

    @app.exception_handler(LookupError)
    async def lookup(request: Request, exc: LookupError) -> Response:
        return reply(request, 404, str(exc))

    @app.exception_handler(RefusedError)
    async def refused(request: Request, exc: RefusedError) -> Response:
        return reply(request, exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "problems": problems}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return reply(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, POSTGRES_UNAVAILABLE):
            log.warning("PostgreSQL unavailable: %r", exc)
            return reply(request, 503, "a store is unavailable; try again shortly")
        log.exception("error answering %s %s", request.method, request.url.path)
        return reply(request, 500, "internal error")
