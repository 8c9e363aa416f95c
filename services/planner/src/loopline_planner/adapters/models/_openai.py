"""`OpenAIChatModel`: any OpenAI-compatible Chat Completions API, through the official SDK."""

from __future__ import annotations

from typing import Any, cast

import httpx2
import openai
from pydantic import SecretStr

from loopline_planner.adapters.models._arguments import error_message
from loopline_planner.adapters.models._errors import retry_after_from, status_error
from loopline_planner.adapters.models._openai_wire import (
    ChunkAccumulator,
    wire_messages,
    wire_tools,
)
from loopline_planner.adapters.models._types import ModelError, ModelReply, ModelRequest, TextSink


class OpenAIChatModel:
    """A model behind an OpenAI-compatible Chat Completions API (OpenAI itself, vLLM, Ollama,
    LM Studio, LiteLLM...), streamed through `openai.AsyncOpenAI`.

    One call per `complete` and no retries of the SDK's own (`max_retries=0`): the planner
    retries, through the shared rate limiter, reading `ModelError.retryable`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | None = None,
        timeout_s: float = 60.0,
        client: openai.AsyncOpenAI | None = None,
    ):
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        """The model's decision for `request`, streamed (its text handed to `on_text` as it
        comes); `ModelError` with its retry policy if none."""
        extra: dict[str, Any] = {}
        if not self._key:  # a local server: no key at all, rather than a made-up one
            extra["extra_headers"] = {"Authorization": openai.omit}
        if request.tools:
            # Only with tools: the API rejects a tool_choice when no tools are given.
            extra = {"tools": wire_tools(request.tools), "tool_choice": "auto"}
        reply = ChunkAccumulator()
        try:
            stream = await self._sdk().chat.completions.create(
                model=self.model,
                messages=cast(Any, wire_messages(request.messages)),
                stream=True,
                stream_options={"include_usage": True},
                **extra,
            )
            async with stream:
                async for chunk in stream:
                    text = reply.add(chunk)
                    if text and on_text is not None:
                        await on_text(text)
        except openai.APIStatusError as exc:
            raise status_error(
                exc.status_code,
                error_message(exc.body, exc.message),
                retry_after_from(exc.response.headers),
            ) from exc
        except openai.APITimeoutError as exc:
            raise ModelError(f"timed out calling {self.base_url}", retryable=True) from exc
        except openai.APIConnectionError as exc:
            where = "the stream from" if reply.chunks else "cannot reach"
            raise ModelError(f"{where} {self.base_url}: {exc.__cause__!r}", retryable=True) from exc
        except httpx2.TransportError as exc:  # the stream broke after it began
            raise ModelError(
                f"the stream from {self.base_url} broke: {exc!r}", retryable=True
            ) from exc
        except openai.APIError as exc:  # an error event in the stream, or an unreadable chunk
            raise _stream_error(exc) from exc
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
    def _key(self) -> str:
        return self._api_key.get_secret_value() if self._api_key is not None else ""

    def _sdk(self) -> openai.AsyncOpenAI:
        # Built on first use, so constructing the adapter opens nothing.
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                # The SDK insists on a key; without one, none is sent (see complete).
                api_key=self._key or "none",
                timeout=self._timeout_s,
                max_retries=0,
                default_headers={"User-Agent": "loopline-planner"},
            )
        return self._client


def _stream_error(exc: openai.APIError) -> ModelError:
    """An error the server reported inside the stream: retryable when it says it is overloaded
    or failed on its side, as its status would."""
    kind = exc.type or exc.code or ""
    retryable = kind in ("server_error", "rate_limit_error", "rate_limit_exceeded", "overloaded")
    status = 429 if kind.startswith("rate_limit") else None
    return ModelError(
        f"the model API reported an error in the stream: {error_message(exc.body, exc.message)}",
        retryable=retryable,
        status=status,
    )
