"""The model settings of the planner, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelSettings(BaseSettings):
    """How the planner reaches its models, and how it waits for them.

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
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_BASE_URL"),
        description="Base URL of the Anthropic Messages API (ANTHROPIC_BASE_URL); none: the "
        "SDK's default, Anthropic's own.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY"),
        description="Key for that API (ANTHROPIC_API_KEY).",
    )
    anthropic_model: str = Field(
        default="claude-sonnet-4-5",
        validation_alias=AliasChoices("LOOPLINE_PLANNER_ANTHROPIC_MODEL"),
        description='Model a profile\'s `model = "anthropic"` means '
        "(LOOPLINE_PLANNER_ANTHROPIC_MODEL).",
    )
    anthropic_max_tokens: int = Field(
        default=4096,
        ge=1,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_ANTHROPIC_MAX_TOKENS"),
        description="Most tokens an Anthropic model may write per step (the API requires a "
        "limit; LOOPLINE_PLANNER_ANTHROPIC_MAX_TOKENS).",
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
    rate_limited_attempts: int = Field(
        default=20,
        ge=0,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_RATE_LIMITED_ATTEMPTS"),
        description="Calls refused with 429 or 529 that are tried again without counting "
        "towards max_attempts: the shared limiter makes the next one wait for capacity "
        "(LOOPLINE_PLANNER_RATE_LIMITED_ATTEMPTS).",
    )
    inline_wait_s: float = Field(
        default=2.0,
        ge=0,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_INLINE_WAIT_S"),
        description="A call that must wait longer than this for capacity frees its batch: "
        "the step is announced as waiting (ModelCallDelayed) and decided in the background "
        "(LOOPLINE_PLANNER_INLINE_WAIT_S).",
    )
    stream_flush_s: float = Field(
        default=0.05,
        ge=0,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_STREAM_FLUSH_S"),
        description="Streamed text is published at most this often per step, in one delta "
        "(LOOPLINE_PLANNER_STREAM_FLUSH_S); 0 publishes every piece as it comes.",
    )
    output_tokens_estimate: int = Field(
        default=512,
        ge=0,
        validation_alias=AliasChoices("LOOPLINE_PLANNER_OUTPUT_TOKENS_ESTIMATE"),
        description="Tokens a call is assumed to write when tokens per minute are reserved "
        "before it; corrected from its reported usage after it "
        "(LOOPLINE_PLANNER_OUTPUT_TOKENS_ESTIMATE).",
    )
