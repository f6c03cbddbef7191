-- Lease the least recently used usable key of a key set for one call, or say exactly how
-- long until one is usable and why.
-- Callers that wait wait in line: each prompt carries the ticket the scheduler gave it when
-- it chose the prompt (in priority and fair-share order), and a key that comes free goes to
-- the lowest ticket due to ask for it, not to whichever thread asks first. Without the line,
-- a per-minute quota coming back at once is a race that no job's share decides.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, set, model, lease_id, tokens, resets, ticket ("" when the prompt has none:
--          it goes behind every waiter)
-- Returns  {"ok", key, now} | {"wait", seconds, reason} | {"none"} when every key has failed.
-- Cost     O(log n) in the key set's size: the ready index is ordered by when each key is
--          usable; a key found unusable for a reason the index did not know (its project's
--          window, exhaustion, a probe in flight) is re-scored and the next one looked at.
local set, model, lease_id = ARGV[2], ARGV[3], ARGV[4]
local tokens = tonumber(ARGV[5])
local now = redis_now()
local reset = next_reset(ARGV[6], now)
local ticket = tonumber(ARGV[7])
local cfg = config('window', 'lease_seconds', 'probe_wait', 'cooldown', 'line_hold', 'line_grace')
local window, lease_ttl = cfg.window or 61, cfg.lease_seconds or 150
local probe_wait, cooldown = cfg.probe_wait or 0.2, cfg.cooldown or 0
local line_hold, line_grace = cfg.line_hold or 5, cfg.line_grace or 2

-- Leases of workers that died mid-call and were not taken for dead (forfeit.lua) before
-- their leases expired: give their in-flight slots back.
local leases = K.leases()
local oldest = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
if oldest[2] and tonumber(oldest[2]) <= now then
  for _, lost in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do drop_lease(lost) end
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
end

local blocked, why, probe = model_wait(model, now, probe_wait)
if blocked > 0 then return {'wait', tostring(blocked), why} end

-- The line: ticket -> ticket, and ticket -> when that waiter was told to ask again. A waiter
-- that has not asked by then plus `line_grace` is taken for gone (its prompt parked, ended
-- or died with its worker).
local line, line_due = K.line(set, model), K.line_due(set, model)
local gone = redis.call('ZRANGEBYSCORE', line_due, '-inf', now - line_grace, 'LIMIT', 0, 256)
if #gone > 0 then
  redis.call('ZREM', line, unpack(gone))
  redis.call('ZREM', line_due, unpack(gone))
end

local function leave_line()
  if ticket then
    redis.call('ZREM', line, ARGV[7])
    redis.call('ZREM', line_due, ARGV[7])
  end
end

-- Wait `seconds` in line: a caller that will ask again from its thread keeps its place.
local function wait_in_line(seconds, reason)
  if ticket and seconds <= line_hold then
    redis.call('ZADD', line, ticket, ARGV[7])
    redis.call('ZADD', line_due, now + seconds, ARGV[7])
  else
    leave_line()
  end
  return {'wait', tostring(seconds), reason}
end

-- Whether a waiter ahead of this caller is due to ask now: the key it asks for is theirs.
-- Only the first few of the line are looked at, so the check stays O(log n).
local function someone_ahead()
  local first = redis.call('ZRANGE', line, 0, 7, 'WITHSCORES')
  for i = 1, #first, 2 do
    if ticket and tonumber(first[i + 1]) >= ticket then return false end
    if number(redis.call('ZSCORE', line_due, first[i])) <= now then return true end
  end
  return false
end

-- Asked again before the one ahead had its turn: a short pause, the place in line kept.
local LINE_PAUSE = 0.05
if someone_ahead() then return wait_in_line(LINE_PAUSE, 'keys') end

-- When `key` may next be leased for this call, with its project and the project's limits;
-- nil if the key has failed.
local function key_free_at(key)
  local key_info = redis.call('HMGET', K.key(key), 'failed_reason', 'project')
  if key_info[1] then return nil end
  local state = redis.call('HMGET', K.key_state(key, model), 'cooldown_until', 'successes',
    'in_flight')
  local free_at = math.max(now, number(state[1]))
  if number(state[2]) == 0 and number(state[3]) > 0 then
    -- An unproven key gets one call at a time until it succeeds: an invalid key then
    -- costs the cluster one call, not one per thread.
    free_at = math.max(free_at, now + probe_wait)
  end
  local project_at, rpm, tpm, rpd = project_free_at(key_info[2], model, tokens, now, window, reset)
  return math.max(free_at, project_at), key_info[2], {rpm, tpm, rpd}
end

local function grant(ready, key, project, limit)
  local key_state = K.key_state(key, model)
  redis.call('HSET', key_state, 'last_used', tostring(now), 'cooldown_until',
    tostring(now + cooldown))
  redis.call('HINCRBY', key_state, 'in_flight', 1)
  redis.call('HINCRBY', key_state, 'requests', 1)
  -- Used last: every other usable key comes before it.
  redis.call('ZADD', ready, now + cooldown, key)
  local second = math.floor(now)
  -- Every call takes its place in the project's minute, limit known or not: a limit learned
  -- later from a 429 then paces from the calls already made, not from an empty minute.
  local rpm_key = K.rpm(project, model)
  redis.call('ZADD', rpm_key, now, lease_id)
  redis.call('EXPIRE', rpm_key, math.ceil(window * 2))
  if limit[1] == 0 then
    redis.call('ZREMRANGEBYSCORE', rpm_key, '-inf', now - window)
  elseif redis.call('ZCARD', rpm_key) >= limit[1] then
    -- The project's minute is full: none of its keys is usable until its oldest call
    -- leaves the window.
    local count = redis.call('ZCARD', rpm_key)
    local oldest = redis.call('ZRANGE', rpm_key, count - limit[1], count - limit[1], 'WITHSCORES')
    hold_project(project, model, tonumber(oldest[2]) + window)
  end
  if limit[2] > 0 then
    redis.call('HINCRBY', K.tpm(project, model), second, tokens)
    redis.call('EXPIRE', K.tpm(project, model), math.ceil(window * 2))
  end
  if limit[3] > 0 and reset then
    redis.call('INCR', K.rpd(project, model, reset))
    redis.call('EXPIREAT', K.rpd(project, model, reset), math.ceil(reset) + 3600)
  end
  local fields = {key, model, project, tokens, second, tostring(now), probe and '1' or '0'}
  redis.call('SET', K.lease(lease_id), table.concat(fields, '\t'), 'EX', math.ceil(lease_ttl) + 60)
  redis.call('ZADD', leases, now + lease_ttl, lease_id)
  if probe then redis.call('HSET', K.model(model), 'probe', lease_id) end
  leave_line()
  return {'ok', key, tostring(now)}
end

local ready = ensure_ready(set, model)
for _ = 1, 16 do
  local top = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  if #top == 0 then
    leave_line()
    return {'none'}
  end
  local key, hint = top[1], tonumber(top[2])
  if hint > now then return wait_in_line(hint - now, 'keys') end
  local free_at, project, limit = key_free_at(key)
  if free_at == nil then
    redis.call('ZREM', ready, key)
  elseif free_at > now then
    redis.call('ZADD', ready, free_at, key)
  else
    return grant(ready, key, project, limit)
  end
end
-- Every candidate looked at needed a new score: the caller asks again at once.
return wait_in_line(0, 'keys')
