"""The limiter's Redis scripts: each runs atomically in Redis, on Redis's clock, so that every
planner replica sees and changes one state.

Rates are GCRA (the generic cell rate algorithm): per scope, the theoretical arrival time
(TAT) of the next call; a call may go when the TAT is at most the scope's tolerance ahead of
now, and moves it on by the call's emission interval (60 s / requests per minute), or by its
tokens times the interval of one token. With a tolerance of 0 (burst 1) calls are spread
evenly, so no 60 s window holds more than the limit.

Fairness: calls waiting for one model queue per tenant (a sorted set of request keys by
arrival); of the tenants with a live waiter, the one served longest ago goes next (round
robin), and within a tenant the oldest call. A waiter is live while it keeps asking: each ask
sets when it will ask again, plus a grace, after which a vanished waiter (its replica died) is
dropped and blocks no one.

Quotas: a tenant's tokens and micro-USD per minute (last hour) and per hour (last day), in two
hashes; a call is refused while a rolling sum is at its limit, with the time the oldest
bucket that must leave the window does leave it.
"""

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, tenant = ARGV[1], ARGV[2]
local est = tonumber(ARGV[3])
local poll, grace = tonumber(ARGV[4]), tonumber(ARGV[5])
local nscopes = tonumber(ARGV[6])
local quota = {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])}
local own = tonumber(ARGV[11])   -- index of the tenant's own scope, 0 if it has none
-- KEYS: 1 waiting, 2 granted, 3 queue, 4 expiry, 5 blocked, 6 quota minutes, 7 quota hours,
-- then per scope: requests TAT, tokens TAT, hold
local waiting, granted, queue, expiry, blocked = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local DAY = 86400000

-- Quotas first: over one, the call is refused whatever the rates.
local function window(hash, prefix, unit, buckets, limit)
  if limit < 0 then return 0 end
  local current = math.floor(now / unit)
  local fields = {}
  for i = 0, buckets - 1 do fields[#fields + 1] = prefix .. (current - buckets + 1 + i) end
  local values = redis.call('HMGET', hash, unpack(fields))
  local total = 0
  for i = 1, buckets do total = total + (tonumber(values[i]) or 0) end
  if total < limit then return 0 end
  for i = 1, buckets do  -- the oldest buckets leave the window first
    total = total - (tonumber(values[i]) or 0)
    if total < limit then return (current + i) * unit end
  end
  return (current + 1) * unit
end
local refused_until = math.max(
  window(KEYS[6], 't', 60000, 60, quota[1]), window(KEYS[7], 't', 3600000, 24, quota[2]),
  window(KEYS[6], 'c', 60000, 60, quota[3]), window(KEYS[7], 'c', 3600000, 24, quota[4]))
if refused_until > 0 then
  redis.call('ZREM', queue, key)
  redis.call('HDEL', expiry, key)
  return {2, refused_until - now, refused_until - now}
end

-- Capacity: the longest wait any scope asks for (0: every scope has room now).
local rate_wait, hold_wait, own_wait = 0, 0, 0
for i = 0, nscopes - 1 do
  local base = 8 + i * 3
  local ri, rtau = tonumber(ARGV[12 + i * 4]), tonumber(ARGV[13 + i * 4])
  local ti = tonumber(ARGV[14 + i * 4])
  local scope_wait = 0
  local hold = tonumber(redis.call('GET', KEYS[base + 2]) or '0')
  if hold > now then hold_wait = math.max(hold_wait, hold - now) end
  if ri > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[base]) or '0'), now)
    scope_wait = math.max(scope_wait, tat - rtau - now)
  end
  if ti > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[base + 1]) or '0'), now)
    if tat > now then scope_wait = math.max(scope_wait, tat + est * ti - 60000 - now) end
  end
  rate_wait = math.max(rate_wait, scope_wait)
  if i + 1 == own then own_wait = scope_wait end
end
local wait = math.max(rate_wait, hold_wait)
local reason = 1
if hold_wait > 0 and hold_wait >= rate_wait then reason = 3 end
if own_wait > 0 then
  redis.call('HSET', blocked, tenant, now + own_wait)
else
  redis.call('HDEL', blocked, tenant)
end

-- Fairness: this call's place among the waiters.
local my_expiry = now + math.min(math.max(wait, 0), poll) + grace
if redis.call('ZSCORE', queue, key) == false then redis.call('ZADD', queue, now, key) end
redis.call('HSET', expiry, key, my_expiry)
redis.call('ZADD', waiting, 'GT', my_expiry, tenant)
redis.call('ZADD', waiting, 'NX', my_expiry, tenant)
redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
while true do  -- drop the tenant's vanished waiters ahead of this one
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if head == nil or head == key then break end
  if tonumber(redis.call('HGET', expiry, head) or '0') >= now then break end
  redis.call('ZREM', queue, head)
  redis.call('HDEL', expiry, head)
end
local position = redis.call('ZRANK', queue, key)
local tenants = redis.call('ZRANGE', waiting, 0, -1)
local next_tenant, next_at, ready = tenant, nil, 0
for _, other in ipairs(tenants) do
  if tonumber(redis.call('HGET', blocked, other) or '0') <= now then
    ready = ready + 1
    local at = tonumber(redis.call('HGET', granted, other) or '0')
    if next_at == nil or at < next_at or (at == next_at and other < next_tenant) then
      next_tenant, next_at = other, at
    end
  end
end
if ready == 0 then ready = 1 end

if wait <= 0 and position == 0 and next_tenant == tenant then
  for i = 0, nscopes - 1 do
    local base = 8 + i * 3
    local ri, ti = tonumber(ARGV[12 + i * 4]), tonumber(ARGV[14 + i * 4])
    local keep = tonumber(ARGV[15 + i * 4])
    if ri > 0 then
      local tat = math.max(tonumber(redis.call('GET', KEYS[base]) or '0'), now) + ri
      redis.call('SET', KEYS[base], tat, 'PX', tat - now + keep)
    end
    if ti > 0 then
      local tat = math.max(tonumber(redis.call('GET', KEYS[base + 1]) or '0'), now)
      tat = math.floor(tat + est * ti)
      redis.call('SET', KEYS[base + 1], tat, 'PX', tat - now + keep)
    end
  end
  redis.call('HSET', granted, tenant, now)
  redis.call('PEXPIRE', granted, DAY)
  redis.call('ZREM', queue, key)
  redis.call('HDEL', expiry, key)
  if redis.call('ZCARD', queue) == 0 then redis.call('ZREM', waiting, tenant) end
  for _, k in ipairs({waiting, queue, expiry, blocked}) do redis.call('PEXPIRE', k, DAY) end
  return {0, 0, 0}
end

-- Not yet: how long until it is worth asking again.
local slot = tonumber(ARGV[12 + nscopes * 4]) -- the longest emission interval
local turns = position * ready
if next_tenant ~= tenant then turns = turns + 1 end
local expected = math.max(wait, turns * slot, 5)
local estimate = math.min(expected, poll)
redis.call('HSET', expiry, key, now + estimate + grace)
redis.call('ZADD', waiting, 'GT', now + estimate + grace, tenant)
for _, k in ipairs({waiting, queue, expiry, blocked}) do redis.call('PEXPIRE', k, DAY) end
if wait <= 0 then reason = 4 end
return {reason, math.floor(estimate), math.floor(expected)}
"""
"""Ask for a call. Answers `{0, 0, 0}`: go; else `{reason, ms, expected}`: 1 a rate is spent,
2 a quota is spent (until the window has room), 3 the provider asked to hold off, 4 others go
first (fairness); `ms` is when to ask again, `expected` when the call may go (an estimate)."""

SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local correction = tonumber(ARGV[1])
local tokens, micro = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[4])
for i = 1, n do
  local ti = tonumber(ARGV[4 + i])
  local tat = tonumber(redis.call('GET', KEYS[2 + i]) or '0')
  if ti > 0 and tat > 0 then
    local moved = math.floor(tat + correction * ti)
    local ttl = redis.call('PTTL', KEYS[2 + i])
    if ttl > 0 then redis.call('SET', KEYS[2 + i], moved, 'PX', ttl) end
  end
end
if tokens > 0 or micro > 0 then
  local minute, hour = math.floor(now / 60000), math.floor(now / 3600000)
  redis.call('HINCRBY', KEYS[1], 't' .. minute, tokens)
  redis.call('HINCRBY', KEYS[1], 'c' .. minute, micro)
  redis.call('HINCRBY', KEYS[2], 't' .. hour, tokens)
  redis.call('HINCRBY', KEYS[2], 'c' .. hour, micro)
  redis.call('PEXPIRE', KEYS[1], 3660000)
  redis.call('PEXPIRE', KEYS[2], 90000000)
end
return 1
"""
"""After a call: correct each scope's token reservation by what the call really read and
wrote, and count its tokens and cost in the tenant's quota windows."""

HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = now + tonumber(ARGV[1])
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < held then
    redis.call('SET', KEYS[i], held, 'PX', tonumber(ARGV[1]) + 1000)
  end
end
return held
"""
"""The provider answered 429/529: no call of these scopes goes before `ARGV[1]` ms from now."""
