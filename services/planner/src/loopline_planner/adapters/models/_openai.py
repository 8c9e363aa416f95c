"""`OpenAIChatModel`: any OpenAI-compatible Chat Completions API, over HTTP."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from loopline_planner.adapters.models._openai_wire import (
    parse_response,
    request_body,
    status_error,
)
from loopline_planner.adapters.models._types import ModelError, ModelReply, ModelRequest


class OpenAIChatModel:
    """A model behind an OpenAI-compatible `POST {base_url}/chat/completions`.

    OpenAI itself, or any server speaking its API (vLLM, Ollama, LiteLLM...). One call per
    `complete`, no retries: `complete_with_retries` does those, reading `ModelError.retryable`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | None = None,
        timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
    ):
        self.name = f"openai:{model}"
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None

    async def complete(self, request: ModelRequest) -> ModelReply:
        """The model's decision for `request`; `ModelError` with its retry policy if none."""
        body = request_body(self.model, request)
        try:
            response = await self._http().post(self.url, json=body, headers=self._headers())
        except httpx.UnsupportedProtocol as exc:  # a bad base URL: retrying will not fix it
            raise ModelError(f"cannot call {self.url}: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise ModelError(f"timed out calling {self.url} ({exc!r})", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ModelError(f"cannot reach {self.url}: {exc!r}", retryable=True) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # e.g. an undecodable body
            raise ModelError(f"calling {self.url} failed: {exc!r}", retryable=False) from exc
        if not response.is_success:
            raise status_error(
                response.status_code, response.content, response.headers.get("retry-after")
            )
        return parse_response(response.status_code, response.content)

    async def aclose(self) -> None:
        """Close the HTTP client, unless it was given (its owner closes it)."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        # Built on first use, so constructing the adapter opens nothing.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)
        return self._client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "loopline-planner"}
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers
