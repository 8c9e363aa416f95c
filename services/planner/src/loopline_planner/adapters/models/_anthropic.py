"""`AnthropicModel`: Claude through the official SDK's Messages API, streamed, with tool use and
prompt caching."""

from __future__ import annotations

from typing import Any, cast

import anthropic
import httpx2
from pydantic import SecretStr

from loopline_planner.adapters.models._anthropic_wire import EventAccumulator, wire_request
from loopline_planner.adapters.models._arguments import error_message
from loopline_planner.adapters.models._errors import retry_after_from, status_error
from loopline_planner.adapters.models._types import ModelError, ModelReply, ModelRequest, TextSink

RETRYABLE_ERROR_TYPES = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}
"""Error types Anthropic may send inside a stream that began as 200, with the status they
would have had as a response."""


class AnthropicModel:
    """A Claude model behind the Messages API (`anthropic.AsyncAnthropic`, `messages.create`
    with `stream=True`).

    One call per `complete` and no retries of the SDK's own (`max_retries=0`): the planner
    retries, through the shared rate limiter, reading `ModelError.retryable`. 429 and 529
    (overloaded) are retryable and keep the server's `retry-after`.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: SecretStr | None = None,
        max_tokens: int = 4096,
        timeout_s: float = 60.0,
        client: anthropic.AsyncAnthropic | None = None,
    ):
        self.name = f"anthropic:{model}"
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        """The model's decision for `request`, streamed (its text handed to `on_text` as it
        comes); `ModelError` with its retry policy if none."""
        wire = wire_request(request.messages, request.tools)
        extra: dict[str, Any] = {}
        if wire.system:
            extra["system"] = wire.system
        if wire.tools:
            extra["tools"] = wire.tools
        reply = EventAccumulator()
        try:
            stream = await self._sdk().messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                messages=cast(Any, wire.messages),
                stream=True,
                **extra,
            )
            async with stream:
                async for event in stream:
                    text = reply.add(event)
                    if text and on_text is not None:
                        await on_text(text)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise ModelError(f"timed out calling {self._where}", retryable=True) from exc
        except anthropic.APIConnectionError as exc:
            where = "the stream from" if reply.started else "cannot reach"
            raise ModelError(f"{where} {self._where}: {exc.__cause__!r}", retryable=True) from exc
        except httpx2.TransportError as exc:  # the stream broke after it began
            raise ModelError(
                f"the stream from {self._where} broke: {exc!r}", retryable=True
            ) from exc
        except anthropic.APIError as exc:
            raise ModelError(
                f"malformed reply from the model API: {exc.message}", retryable=False
            ) from exc
        except (ValueError, TypeError) as exc:  # the SDK could not read what came
            raise ModelError(
                f"malformed reply from the model API ({type(exc).__name__}: {exc})",
                retryable=False,
            ) from exc
        return reply.reply()

    async def aclose(self) -> None:
        """Close the client, unless it was given (its owner closes it)."""
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def _where(self) -> str:
        return self.base_url or "the Anthropic API"

    def _sdk(self) -> anthropic.AsyncAnthropic:
        # Built on first use, so constructing the adapter opens nothing.
        if self._client is None:
            key = self._api_key.get_secret_value() if self._api_key is not None else None
            self._client = anthropic.AsyncAnthropic(
                base_url=self.base_url,
                api_key=key or "none",
                timeout=self._timeout_s,
                max_retries=0,
                default_headers={"User-Agent": "loopline-planner"},
            )
        return self._client


def _status_error(exc: anthropic.APIStatusError) -> ModelError:
    """The error for a refused request, or for an error event inside a stream (its status is
    then the stream's 200, and the error's type says what happened)."""
    body = exc.body
    kind = ""
    if isinstance(body, dict):
        error = body.get("error")
        kind = str(error.get("type", "")) if isinstance(error, dict) else ""
    status = exc.status_code
    if status < 400:
        status = RETRYABLE_ERROR_TYPES.get(kind, 400)
    return status_error(
        status, error_message(body, exc.message), retry_after_from(exc.response.headers)
    )
