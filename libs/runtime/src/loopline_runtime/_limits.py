"""Rate limits and tenant quotas: what every planner replica holds to, together, in Redis.

A limits file (TOML, `LOOPLINE_LIMITS_FILE`, else the `limits.toml` shipped beside
`agents.toml`) declares requests and tokens per minute per provider, per model and per tenant,
and each tenant's quotas of tokens and cost per hour and per day.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LIMITS_FILE_VARIABLE = "LOOPLINE_LIMITS_FILE"
ANY_TENANT = "*"


class RateLimit(BaseModel):
    """Requests and tokens (read and written) per minute; unset: no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_minute: float | None = Field(default=None, gt=0, description="Calls a minute.")
    tokens_per_minute: float | None = Field(
        default=None, gt=0, description="Tokens read and written a minute."
    )
    burst: int = Field(
        default=1,
        ge=1,
        description="Calls that may start at once when the limit has room; 1 spreads them "
        "evenly (a 60-a-minute limit starts one a second), which keeps any minute within it.",
    )

    @property
    def limited(self) -> bool:
        """Whether any rate is set."""
        return self.requests_per_minute is not None or self.tokens_per_minute is not None


class Quota(BaseModel):
    """What a tenant may spend, over the last hour and the last day (rolling)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_hour: int | None = Field(default=None, ge=0, description="Tokens, last hour.")
    tokens_per_day: int | None = Field(default=None, ge=0, description="Tokens, last 24 h.")
    cost_usd_per_hour: float | None = Field(default=None, ge=0, description="USD, last hour.")
    cost_usd_per_day: float | None = Field(default=None, ge=0, description="USD, last 24 h.")

    @property
    def capped(self) -> bool:
        """Whether any quota is set."""
        return any(
            v is not None
            for v in (
                self.tokens_per_hour,
                self.tokens_per_day,
                self.cost_usd_per_hour,
                self.cost_usd_per_day,
            )
        )


class TenantLimits(RateLimit, Quota):
    """A tenant's own rate limit (all its models together) and its quotas."""


class Limits(BaseModel):
    """Everything a limits file declares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    margin: float = Field(
        default=0.02,
        ge=0,
        lt=0.5,
        description="Limits are held this much below what is declared: a provider counts the "
        "calls it receives, the limiter the calls it lets go, a little earlier.",
    )
    poll_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest a waiting call sleeps before it asks the limiter again.",
    )
    providers: dict[str, RateLimit] = Field(
        default_factory=dict, description="By provider (`openai`, `anthropic`): all its models."
    )
    models: dict[str, RateLimit] = Field(
        default_factory=dict, description="By model id (`anthropic:claude-sonnet-4-5`)."
    )
    tenants: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description=f"By tenant; `{ANY_TENANT}` for every tenant without a table of its own.",
    )

    def rate_limits(self, model: str, tenant: str) -> list[tuple[str, RateLimit]]:
        """The limits a call of `model` for `tenant` must fit, each with its scope's name."""
        provider = model.partition(":")[0]
        scopes = [
            (f"provider:{provider}", self.providers.get(provider)),
            (f"model:{model}", self.models.get(model)),
            (f"tenant:{tenant}", self.tenant(tenant)),
        ]
        return [(name, limit) for name, limit in scopes if limit is not None and limit.limited]

    def tenant(self, tenant: str) -> TenantLimits | None:
        """The tenant's own table, else the one for every tenant."""
        return self.tenants.get(tenant) or self.tenants.get(ANY_TENANT)

    def quota(self, tenant: str) -> Quota | None:
        """The tenant's quotas, if it has any."""
        table = self.tenant(tenant)
        return table if table is not None and table.capped else None


class LimitsError(ValueError):
    """A limits file that cannot be read or is invalid."""


def parse_limits(text: str, source: str = "limits file") -> Limits:
    """The limits of the TOML text of a limits file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LimitsError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Limits.model_validate(data)
    except ValidationError as exc:
        raise LimitsError(f"{source}: {exc}") from None


def load_limits(path: Path | None = None) -> Limits:
    """The limits of `path`, else of LOOPLINE_LIMITS_FILE, else the ones shipped here."""
    chosen = path or (Path(p) if (p := os.environ.get(LIMITS_FILE_VARIABLE)) else None)
    if chosen is None:
        shipped = resources.files("loopline_runtime").joinpath("limits.toml").read_text()
        return parse_limits(shipped, "built-in limits.toml")
    try:
        return parse_limits(chosen.read_text(), str(chosen))
    except OSError as exc:
        raise LimitsError(f"cannot read limits file {chosen}: {exc}") from None
