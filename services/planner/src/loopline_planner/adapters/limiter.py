"""The rate limiter every planner replica shares: requests and tokens per minute per provider,
model and tenant, tenant quotas per hour and day, and the provider's own "hold off" (429/529
with Retry-After), all in Redis (scripts in `limiter_lua`), fair between tenants.

`RedisLimiter.ask` answers one question, atomically: may this call go now, and if not, how
long until it is worth asking again, and why. `Gate.admit` asks until the answer is yes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from loopline_events import BudgetExceededError, DelayReason, TokenUsage
from loopline_runtime import Limits, RateLimit

from loopline_planner.adapters import metrics
from loopline_planner.adapters.limiter_lua import ACQUIRE, HOLD, SETTLE
from loopline_planner.adapters.models import provider_of

log = logging.getLogger("loopline.planner.limiter")

GRACE_S = 10.0
"""A waiter that has not asked again this long after it said it would is gone (its replica
died): it no longer holds its tenant's place."""
REMOTE_PROVIDERS = frozenset({"openai", "anthropic"})
"""Providers that may answer 429/529: their calls always ask, so a hold one replica learned
holds every replica."""
NO_LIMIT = -1


class QuotaExceededError(BudgetExceededError):
    """The tenant spent a quota and its profile fails runs over quota."""


class WaitedTooLongError(BudgetExceededError):
    """A call waited for capacity longer than its run may live."""


@dataclass(frozen=True, slots=True)
class Ask:
    """One call asking for capacity: `key` names the call (unique per try)."""

    key: str
    tenant: str
    model: str
    tokens: int
    """Tokens it is expected to read and write (corrected by `settle` afterwards)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The limiter's answer: go, or ask again after `wait_s` for `reason`."""

    go: bool
    wait_s: float = 0.0
    reason: DelayReason | None = None
    expected_s: float = 0.0
    """When the call may go, as far as the limiter can tell (queue position, quota window)."""


GO = Verdict(go=True)
_REASONS = {
    1: DelayReason.RATE_LIMIT,
    2: DelayReason.QUOTA,
    3: DelayReason.PROVIDER_BUSY,
    4: DelayReason.RATE_LIMIT,
}


@dataclass(frozen=True, slots=True)
class _Scope:
    name: str
    request_ms: int
    """Emission interval of one request (0: no request rate)."""
    tolerance_ms: int
    token_ms: float
    """Emission interval of one token (0: no token rate)."""


class RedisLimiter:
    """Limits and quotas of `limits`, held in Redis under `namespace`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        limits: Limits,
        namespace: str = "",
        *,
        grace_s: float = GRACE_S,
    ):
        self.redis = redis
        self.limits = limits
        self.grace_s = grace_s
        self.prefix = f"{namespace}planner:limit:"
        self._acquire = redis.register_script(ACQUIRE)
        self._settle = redis.register_script(SETTLE)
        self._hold = redis.register_script(HOLD)
        self._scopes: dict[tuple[str, str], tuple[_Scope, ...]] = {}

    def applies(self, model: str, tenant: str) -> bool:
        """Whether calls of `model` for `tenant` ask at all: they do when a limit or a quota
        names them, or when their provider may answer 429 (its holds must be seen)."""
        return (
            provider_of(model) in REMOTE_PROVIDERS
            or bool(self.limits.rate_limits(model, tenant))
            or self.limits.quota(tenant) is not None
        )

    async def ask(self, ask: Ask) -> Verdict:
        """May the call go now? One atomic script in Redis."""
        scopes = self._scopes_of(ask.model, ask.tenant)
        fair = f"{self.prefix}fair:{ask.model}:"
        quota = f"{self.prefix}quota:{ask.tenant}:"
        keys = [
            f"{fair}waiting",
            f"{fair}granted",
            f"{fair}q:{ask.tenant}",
            f"{fair}e:{ask.tenant}",
            f"{fair}blocked",
            f"{quota}m",
            f"{quota}h",
        ]
        args: list[str | int | float] = [
            ask.key,
            ask.tenant,
            ask.tokens,
            int(self.limits.poll_s * 1000),
            int(self.grace_s * 1000),
            len(scopes),
            *self._quota_args(ask.tenant),
            next((i + 1 for i, s in enumerate(scopes) if s.name.startswith("tenant:")), 0),
        ]
        for scope in scopes:
            keys += [f"{self.prefix}{scope.name}:{part}" for part in ("r", "t", "hold")]
            args += [scope.request_ms, scope.tolerance_ms, scope.token_ms, 60_000]
        args.append(max((s.request_ms for s in scopes), default=0) or 50)
        code, wait_ms, expected_ms = await self._acquire(keys=keys, args=args)
        if int(code) == 0:
            return GO
        wait_s = max(int(wait_ms), 1) / 1000.0
        return Verdict(
            go=False,
            wait_s=wait_s,
            reason=_REASONS[int(code)],
            expected_s=max(wait_s, int(expected_ms) / 1000.0),
        )

    async def settle(self, ask: Ask, usage: TokenUsage, cost_usd: float) -> None:
        """After the call: correct its token reservation by what it used, and count its
        tokens and cost in the tenant's quota windows."""
        scopes = [s for s in self._scopes_of(ask.model, ask.tenant) if s.token_ms > 0]
        quota = f"{self.prefix}quota:{ask.tenant}:"
        keys = [f"{quota}m", f"{quota}h", *(f"{self.prefix}{s.name}:t" for s in scopes)]
        args: list[str | int | float] = [
            usage.total_tokens - ask.tokens,
            usage.total_tokens,
            math.ceil(cost_usd * 1_000_000),
            len(scopes),
            *(s.token_ms for s in scopes),
        ]
        await self._settle(keys=keys, args=args)

    async def hold(self, model: str, seconds: float) -> None:
        """The provider answered 429/529: hold every call of the model and its provider for
        `seconds`, in every replica."""
        keys = [
            f"{self.prefix}provider:{provider_of(model)}:hold",
            f"{self.prefix}model:{model}:hold",
        ]
        await self._hold(keys=keys, args=[max(1, int(seconds * 1000))])

    def _scopes_of(self, model: str, tenant: str) -> tuple[_Scope, ...]:
        cached = self._scopes.get((model, tenant))
        if cached is not None:
            return cached
        limited = dict(self.limits.rate_limits(model, tenant))
        names = [f"provider:{provider_of(model)}", f"model:{model}"]
        if f"tenant:{tenant}" in limited:
            names.append(f"tenant:{tenant}")
        scopes = tuple(self._scope(name, limited.get(name)) for name in names)
        self._scopes[(model, tenant)] = scopes
        return scopes

    def _scope(self, name: str, limit: RateLimit | None) -> _Scope:
        stretch = 1.0 + self.limits.margin
        if limit is None:
            return _Scope(name, 0, 0, 0.0)
        request_ms = (
            math.ceil(60_000 / limit.requests_per_minute * stretch)
            if limit.requests_per_minute
            else 0
        )
        token_ms = 60_000 / limit.tokens_per_minute * stretch if limit.tokens_per_minute else 0.0
        return _Scope(name, request_ms, (limit.burst - 1) * request_ms, token_ms)

    def _quota_args(self, tenant: str) -> list[int]:
        quota = self.limits.quota(tenant)
        if quota is None:
            return [NO_LIMIT] * 4

        def micro(usd: float | None) -> int:
            return NO_LIMIT if usd is None else math.ceil(usd * 1_000_000)

        return [
            NO_LIMIT if quota.tokens_per_hour is None else quota.tokens_per_hour,
            NO_LIMIT if quota.tokens_per_day is None else quota.tokens_per_day,
            micro(quota.cost_usd_per_hour),
            micro(quota.cost_usd_per_day),
        ]


class Limiter(Protocol):
    """What `Gate` asks: `RedisLimiter`, or a fake in tests."""

    def applies(self, model: str, tenant: str) -> bool: ...

    async def ask(self, ask: Ask) -> Verdict: ...

    async def settle(self, ask: Ask, usage: TokenUsage, cost_usd: float) -> None: ...

    async def hold(self, model: str, seconds: float) -> None: ...


OnWait = Callable[[Verdict], Awaitable[None]]
"""Told before each wait: why, for how long, and when the call may go."""


class Gate:
    """Admits model calls through a `RedisLimiter`, waiting as long as it says.

    A Redis that cannot answer opens the gate (with a warning): calls then go unlimited and a
    provider's 429s are retried with backoff, which beats stalling every run on the limiter.
    """

    def __init__(self, limiter: Limiter):
        self.limiter = limiter

    async def admit(
        self,
        ask: Ask,
        *,
        pause_over_quota: bool,
        on_wait: OnWait,
        give_up_after_s: float | None = None,
    ) -> None:
        """Return once the call may go; `QuotaExceededError` when the tenant is over a quota
        and its runs are not to pause; `WaitedTooLongError` past `give_up_after_s` of waiting
        (a run cannot outlive its deadline: nobody waits for the call any more)."""
        if not self.limiter.applies(ask.model, ask.tenant):
            return
        started: float | None = None
        reason: DelayReason | None = None
        try:
            while True:
                try:
                    verdict = await self.limiter.ask(ask)
                except (aioredis.RedisError, OSError) as exc:
                    log.warning("rate limiter unreachable, calling without it: %r", exc)
                    return
                if verdict.go:
                    return
                assert verdict.reason is not None
                if verdict.reason is DelayReason.QUOTA and not pause_over_quota:
                    metrics.quota_refusal("failed")
                    raise QuotaExceededError(
                        f"tenant {ask.tenant!r} is over its quota (limits file); its window "
                        f"has room again in {verdict.wait_s:.0f} s"
                    )
                if started is None:
                    started = time.monotonic()
                    if verdict.reason is DelayReason.QUOTA:
                        metrics.quota_refusal("paused")
                elif give_up_after_s is not None and time.monotonic() - started > give_up_after_s:
                    raise WaitedTooLongError(
                        f"waited {time.monotonic() - started:.0f} s for capacity "
                        f"({verdict.reason.value}); the run's time is up"
                    )
                if verdict.reason is not reason:
                    if reason is not None:
                        metrics.waiting(reason, -1)
                    metrics.waiting(verdict.reason, 1)
                    reason = verdict.reason
                await on_wait(verdict)
                await asyncio.sleep(verdict.wait_s)
        finally:
            if reason is not None and started is not None:
                metrics.waiting(reason, -1)
                metrics.waited(reason, time.monotonic() - started)

    async def settle(self, ask: Ask, usage: TokenUsage, cost_usd: float) -> None:
        """Count the call's real usage (best effort: a lost count only loosens the limits)."""
        if not self.limiter.applies(ask.model, ask.tenant):
            return
        try:
            await self.limiter.settle(ask, usage, cost_usd)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("rate limiter unreachable, usage not counted: %r", exc)

    async def hold(self, model: str, seconds: float) -> None:
        """Hold every replica's calls of `model` for `seconds` (the provider asked)."""
        try:
            await self.limiter.hold(model, seconds)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("rate limiter unreachable, hold not shared: %r", exc)
