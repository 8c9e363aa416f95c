"""The model settings of the planner, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelSettings(BaseSettings):
    """How the planner reaches its models.

    Each field is read from the environment variable its alias names: the OpenAI ones under
    the names every OpenAI client uses, the rest under `LOOPLINE_PLANNER_`. In code, the
    field names work too: `ModelSettings(openai_base_url=...)`.
    """

    # Aliases are read without the prefix. The prefix is for the field names, which
    # populate_by_name also makes the env source try: prefixed, a generic variable such as
    # TIMEOUT_S or OPENAI_MODEL set for some other program is never picked up.
    model_config = SettingsConfigDict(
        env_prefix="LOOPLINE_PLANNER_", extra="ignore", populate_by_name=True
    )

    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible Chat Completions API (OPENAI_BASE_URL).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY"),
        description="Bearer key for that API (OPENAI_API_KEY); none for local servers.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("LOOPLINE_PLANNER_OPENAI_MODEL"),
        description='Model a profile\'s `model = "openai"` means (LOOPLINE_PLANNER_OPENAI_MODEL).',
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_MODEL_TIMEOUT_S"),
        description="Seconds one model call may take (LOOPLINE_PLANNER_MODEL_TIMEOUT_S).",
    )
    max_attempts: int = Field(
        default=4,
        ge=1,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_MODEL_MAX_ATTEMPTS"),
        description="Calls made for one decision before giving up, the first included "
        "(LOOPLINE_PLANNER_MODEL_MAX_ATTEMPTS).",
    )
