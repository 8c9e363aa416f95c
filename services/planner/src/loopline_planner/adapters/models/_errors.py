"""HTTP answers that are not a success, as `ModelError`s with their retry policy: the same rule
for every provider."""

from __future__ import annotations

from collections.abc import Mapping

from loopline_events import parse_retry_after

from loopline_planner.adapters.models._types import ModelError

RETRYABLE_STATUSES = frozenset({408, 409, 429, 529})
"""Besides every 5xx: a timeout, a conflict, rate limited, overloaded (Anthropic)."""


def status_error(status: int, message: str, retry_after: float | None) -> ModelError:
    """The error for HTTP `status`: retryable on 408, 409, 429, 529 and 5xx, which keep the
    wait the server asked for; not on other 4xx, where the same request fails the same way."""
    retryable = status in RETRYABLE_STATUSES or status >= 500
    return ModelError(
        f"HTTP {status} from the model API: {message}",
        retryable=retryable,
        retry_after=retry_after if retryable else None,
        status=status,
    )


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: `retry-after-ms` (OpenAI's and Anthropic's precise one)
    first, then the standard `Retry-After`."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        seconds = parse_retry_after(millis)
        if seconds is not None:
            return seconds / 1000.0
    return parse_retry_after(headers.get("retry-after"))
