-- Prepended to every pool script when it is loaded: what they all need, written once.
-- Every pool script takes the key prefix's hash tag as ARGV[1]; every key below shares it.
-- The key names mirror gemini_tasks/keyspace.py (a test checks that both agree).
local TAG = ARGV[1]

-- K.name(...) is the Redis key `name` names, its parts filled in in order.
local PATTERNS = {
  registry = '%s:keys', config = '%s:config', limits = '%s:limits', models = '%s:models',
  leases = '%s:leases', lease = '%s:lease:%s', keyset = '%s:keyset:%s', key = '%s:key:%s',
  key_state = '%s:key:%s:%s', holders = '%s:holders:%s', ready = '%s:ready:%s:%s',
  members = '%s:members:%s', project = '%s:project:%s:%s', learned = '%s:learned:%s:%s',
  rpm = '%s:rpm:%s:%s', tpm = '%s:tpm:%s:%s', rpd = '%s:rpd:%s:%s:%d', model = '%s:model:%s',
  line = '%s:line:%s:%s', line_due = '%s:line:%s:%s:due',
}
local K = setmetatable({}, {__index = function(_, name)
  local pattern = PATTERNS[name]
  return function(...) return string.format(pattern, TAG, ...) end
end})

-- A lease is one string: key, model, project, tokens, second, acquired_at, probe ("1"/"0").
local function unpack_lease(value)
  if not value then return nil end
  local out = {}
  for field in string.gmatch(value, '[^\t]+') do table.insert(out, field) end
  return out
end

-- End lease `id` without an outcome, its holder dead: its key's slot is free again (and a
-- half-open circuit's probe or an unproven key's one call with it, as they name the lease).
-- Whether the lease was still there.
local function drop_lease(id)
  local lease = unpack_lease(redis.call('GET', K.lease(id)))
  if not lease then return false end
  redis.call('HINCRBY', K.key_state(lease[1], lease[2]), 'in_flight', -1)
  redis.call('DEL', K.lease(id))
  return true
end

-- Seconds since the epoch by the Redis server's clock, so skewed workers agree.
local function redis_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1000000
end

-- The first of the caller's daily-reset instants (comma-separated epoch seconds) after now.
local function next_reset(resets, now)
  for boundary in string.gmatch(resets, '[^,]+') do
    local value = tonumber(boundary)
    if value > now then return value end
  end
  return nil
end

local function number(value, default)
  return tonumber(value) or default or 0
end

-- The pool's settings named, as the workers registered them, by name.
local function config(...)
  local names = {...}
  local values = redis.call('HMGET', K.config(), ...)
  local out = {}
  for i, name in ipairs(names) do out[name] = tonumber(values[i]) end
  return out
end

-- One limit of (project, model): configured (most specific first) wins; else learned.
local function limits(project, model)
  local configured = redis.call('HMGET', K.limits(), 'pm:' .. project .. ':' .. model,
    'p:' .. project, 'm:' .. model, 'default', 'default_model')
  local spec = configured[1] or configured[2] or configured[3]
  if not spec and (configured[5] == false or configured[5] == model) then spec = configured[4] end
  local rpm, tpm, rpd = 0, 0, 0
  if spec then
    local a, b, c = string.match(spec, '^(%d+) (%d+) (%d+)$')
    rpm, tpm, rpd = tonumber(a), tonumber(b), tonumber(c)
  end
  local learned = redis.call('HMGET', K.learned(project, model), 'rpm', 'tpm', 'rpd')
  if rpm == 0 then rpm = number(learned[1]) end
  if tpm == 0 then tpm = number(learned[2]) end
  if rpd == 0 then rpd = number(learned[3]) end
  return rpm, tpm, rpd
end

-- When `project` may next send a request of `tokens` to `model`: its exhaustion, and its
-- per-minute and per-day windows against its limits. Trims the windows as it reads them.
local function project_free_at(project, model, tokens, now, window, reset)
  local free_at = now
  local exhausted = number(redis.call('HGET', K.project(project, model), 'exhausted_until'))
  if exhausted > free_at then free_at = exhausted end
  local rpm, tpm, rpd = limits(project, model)
  if rpm > 0 then
    local rpm_key = K.rpm(project, model)
    redis.call('ZREMRANGEBYSCORE', rpm_key, '-inf', now - window)
    local count = redis.call('ZCARD', rpm_key)
    if count >= rpm then
      -- Free once the oldest (count - rpm + 1) requests have left the window.
      local entry = redis.call('ZRANGE', rpm_key, count - rpm, count - rpm, 'WITHSCORES')
      free_at = math.max(free_at, tonumber(entry[2]) + window)
    end
  end
  if tpm > 0 then
    local tpm_key, buckets, used = K.tpm(project, model), {}, 0
    local all = redis.call('HGETALL', tpm_key)
    for i = 1, #all, 2 do
      local second, count = tonumber(all[i]), tonumber(all[i + 1])
      if second + 1 <= now - window then
        redis.call('HDEL', tpm_key, all[i])
      else
        used = used + count
        table.insert(buckets, {second, count})
      end
    end
    -- A request larger than the whole budget may go when the window is empty.
    if used > 0 and used + tokens > tpm then
      table.sort(buckets, function(a, b) return a[1] < b[1] end)
      for _, bucket in ipairs(buckets) do
        used = used - bucket[2]
        if used + tokens <= tpm then
          free_at = math.max(free_at, bucket[1] + 1 + window)
          break
        end
      end
    end
  end
  if rpd > 0 and reset and number(redis.call('GET', K.rpd(project, model, reset))) >= rpd then
    free_at = math.max(free_at, reset)
  end
  return free_at, rpm, tpm, rpd
end

-- Every ready index that holds `key` for `model`: one per key set the key is in.
local function ready_sets(key, model)
  local out = {}
  for _, set in ipairs(redis.call('SMEMBERS', K.holders(key))) do
    table.insert(out, K.ready(set, model))
  end
  return out
end

-- Hint that no key of `project` is usable before `until_` (only ever raises a hint).
local function hold_project(project, model, until_)
  for _, key in ipairs(redis.call('SMEMBERS', K.members(project))) do
    for _, ready in ipairs(ready_sets(key, model)) do
      if redis.call('ZSCORE', ready, key) then redis.call('ZADD', ready, 'GT', until_, key) end
    end
  end
end

-- The index of `set`'s usable keys for `model`, built from the key set on first use: each
-- key scored by when it was last used (or will be usable), least recently used first.
local function ensure_ready(set, model)
  local ready = K.ready(set, model)
  if redis.call('EXISTS', ready) == 1 or redis.call('SCARD', K.keyset(set)) == 0 then
    return ready
  end
  redis.call('SADD', K.models(), model)
  for _, key in ipairs(redis.call('SMEMBERS', K.keyset(set))) do
    if redis.call('HEXISTS', K.key(key), 'failed_reason') == 0 then
      local state = redis.call('HMGET', K.key_state(key, model), 'last_used', 'cooldown_until')
      redis.call('ZADD', ready, math.max(number(state[1]), number(state[2])), key)
    end
  end
  return ready
end

-- Why every key of `model` must wait, and how long: a capacity backoff or an open circuit.
-- Returns wait, reason, and whether this call may be the one probe of a half-open circuit.
local function model_wait(model, now, probe_wait)
  local state = redis.call('HMGET', K.model(model), 'backoff_until', 'open_until', 'probe')
  local backoff, open_until = number(state[1]), number(state[2])
  if backoff > now then return backoff - now, 'capacity', false end
  if open_until == 0 then return 0, '', false end
  if open_until > now then return open_until - now, 'outage', false end
  if state[3] and redis.call('EXISTS', K.lease(state[3])) == 1 then
    return probe_wait, 'outage', false
  end
  return 0, '', true
end
