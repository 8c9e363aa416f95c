"""Which key a process signs its goals and commands with, and which keys memory checks.

LOOPLINE_SIGNING_KEY_ID and LOOPLINE_SIGNING_KEY (base64, 32 bytes or more) give the key a
producer signs with; LOOPLINE_SIGNING_KEYS_FILE the keyring a verifier checks signatures
against (docs/decisions/0025-signed-envelopes.md). With no keyring, memory takes goals and
commands unsigned, as a cluster without authentication does: for development only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from loopline_events import Keyring, SigningKey, decode_secret
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_runtime._access import LOCAL_PRINCIPAL, local_credentials
from loopline_runtime._errors import ConfigurationError
from loopline_runtime._secrets import register_settings


class SigningSettings(BaseSettings):
    """A process's signing key, and the keyring it checks others' signatures with."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_SIGNING_", frozen=True)

    key_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The id of the key this process signs with (LOOPLINE_SIGNING_KEY_ID): its "
        "principal's name in the keyring.",
    )
    key: SecretStr | None = Field(
        default=None,
        description="The key itself, base64 of 32 random bytes or more (LOOPLINE_SIGNING_KEY).",
    )
    keys_file: Path | None = Field(
        default=None,
        description="The keyring memory checks signatures with (LOOPLINE_SIGNING_KEYS_FILE): "
        '{"keys": {key_id: {"secret": base64, "acts_for": [tenant or "*", ...]}}}.',
    )

    @model_validator(mode="after")
    def _whole_key(self) -> Self:
        if (self.key_id is None) != (self.key is None):
            raise ValueError("give LOOPLINE_SIGNING_KEY_ID and LOOPLINE_SIGNING_KEY together")
        return self

    def signing_key(self) -> SigningKey | None:
        """The key to sign with, if one is set; ConfigurationError if it is not a key."""
        if self.key_id is None or self.key is None:
            return None
        try:
            secret = decode_secret(self.key.get_secret_value(), what="LOOPLINE_SIGNING_KEY")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return SigningKey(self.key_id, secret)

    def keyring(self) -> Keyring | None:
        """The keyring to verify with, if a file is set; ConfigurationError if unreadable."""
        if self.keys_file is None:
            return None
        try:
            return Keyring.from_file(self.keys_file)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None


def load_signing(principal: str | None = None) -> SigningSettings:
    """The signing settings from the environment; the key is registered as a secret, so
    `redact` keeps it out of logs and events.

    With no key in the environment, or a `principal` named, the key of that principal (the
    local operator unless named) from this machine's credentials file, when there is one: the
    CLI and the SDK sign as `loopline infra up` made them, as they connect.
    """
    try:
        settings = SigningSettings()
    except ValueError as exc:
        raise ConfigurationError(f"signing settings: {exc}") from None
    if settings.key_id is None or principal is not None:
        local = local_credentials()
        if local is None and principal is not None:
            raise ConfigurationError(f"no credentials file to sign as {principal!r} with")
        if local is not None and (principal is not None or LOCAL_PRINCIPAL in local.principals):
            name = principal or LOCAL_PRINCIPAL
            key = local.principal(name).signing_key
            settings = settings.model_copy(update={"key_id": name, "key": key})
    register_settings(settings)
    return settings
