"""Secrets stay out of what Loopline writes: error messages, logs, dead letters."""

from __future__ import annotations

import logging

import pytest
from loopline_runtime import redact, register_secrets, register_settings
from loopline_runtime._secrets import MASK, RedactingFilter
from pydantic import BaseModel, SecretStr


def test_registered_secrets_and_key_shaped_strings_are_masked() -> None:
    register_secrets(["hunter2-very-secret-token"])
    echoed = (
        'HTTP 401 {"error": "bad key hunter2-very-secret-token", "hint": '
        '"sk-proj-AbCdEfGhIjKlMnOpQrStUvWx is not valid, nor sk-ant-api03-zzzzzzzzzzzzzzzzzzzz"}'
    )
    cleaned = redact(echoed)
    assert "hunter2" not in cleaned
    assert "sk-proj" not in cleaned
    assert "sk-ant" not in cleaned
    assert cleaned.count(MASK) == 3
    assert redact("the answer is 42; skies are blue") == "the answer is 42; skies are blue"


def test_settings_register_the_secrets_they_hold() -> None:
    class Inner(BaseModel):
        password: SecretStr

    class Outer(BaseModel):
        key: SecretStr
        inner: Inner
        name: str = "not secret at all"

    register_settings(
        Outer(key=SecretStr("outer-key-123456"), inner=Inner(password=SecretStr("p4ssw0rd-long")))
    )
    assert redact("outer-key-123456 and p4ssw0rd-long, not secret at all") == (
        f"{MASK} and {MASK}, not secret at all"
    )


def test_log_records_are_masked_arguments_included(caplog: pytest.LogCaptureFixture) -> None:
    register_secrets(["log-secret-0123456789"])
    logger = logging.getLogger("loopline.test.secrets")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.WARNING, "loopline.test.secrets"):
            logger.warning("model failed: %s", "key log-secret-0123456789 refused")
    finally:
        logger.filters.clear()
    assert "log-secret" not in caplog.text
    assert MASK in caplog.text
