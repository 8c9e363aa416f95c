"""Keeping secrets out of what Loopline writes down.

A model endpoint that echoes the API key in an error body, a tool that prints a token: any
text that came from outside may hold a secret, and an error message travels far — into logs,
events, dead letters, stores, and later into another run's recalled memories. `redact` takes
out the secrets this process knows (registered by the settings that hold them) and anything
shaped like a common API key, before such text is written anywhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

MASK = "[redacted]"

_SHAPES = re.compile(
    r"\b(?:"
    r"sk-(?:proj-|ant-(?:api\d{2}-)?)?[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API key
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{16,}"  # an HTTP bearer token (the word stays)
    r")"
)
"""Strings shaped like the common providers' API keys, and bearer tokens."""

_CARDS = re.compile(
    r"(?<![\d.])(?:"
    r"\d{13,19}"  # unbroken
    r"|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"  # 4-4-4-4(-3), one separator
    r"|\d{4}([ -])\d{6}\2\d{4,5}"  # 4-6-5 (American Express), 4-6-4 (Diners)
    r")(?!\d|\.\d)"
)
"""Digit runs written like a payment card's number; `luhn_valid` says which are one."""

_known: set[str] = set()
MIN_SECRET = 8
"""Shorter values are not registered: masking them would mangle ordinary text."""


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember these values as secrets of this process: `redact` masks them from now on."""
    _known.update(v for v in values if v and len(v) >= MIN_SECRET)


def register_settings(settings: BaseModel) -> None:
    """Register every `SecretStr` a settings object (and its nested settings) holds."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            # A URL's password alone may show up too ("password authentication failed").
            register_secrets([secret, urlsplit(secret).password if "://" in secret else None])
        elif isinstance(value, BaseModel):
            register_settings(value)


def redact(text: str) -> str:
    """`text` with every known secret and key-shaped string masked."""
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return _SHAPES.sub(MASK, text)


def luhn_valid(digits: str) -> bool:
    """Whether `digits` (13 to 19 of them) pass the Luhn check every card number passes."""
    if not (13 <= len(digits) <= 19 and digits.isdigit()):
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def mask_cards(text: str) -> str:
    """`text` with every payment card number masked: a digit run written like one (unbroken,
    or grouped by spaces or dashes) that passes the Luhn check."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group())
        return MASK if luhn_valid(digits) else match.group()

    return _CARDS.sub(mask, text)


class RedactingFilter(logging.Filter):
    """Masks secrets in every log record's message (its arguments formatted first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
