-- End a lease and record what the call taught the cluster about its key, its project and
-- its model.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, lease_id, outcome, tokens_used, retry_delay, quota, learned, reason, resets
-- outcome  "success" | "server" | "capacity" | "quota" | "key_invalid" | "invalid_request"
--          (anything else, such as "storage", only ends the lease)
-- quota    "day", "minute" or "" (which quota a 429 named), or "zero" (a limit of 0)
-- learned  "rpm tpm rpd" that a 429 said the project has ("0" where it said nothing)
-- Returns  {exhaustion count of the project for the model, "open" if the model's circuit is
--           open after this call else "closed"}
local lease_id, outcome = ARGV[2], ARGV[3]
local tokens_used, retry_delay = tonumber(ARGV[4]), tonumber(ARGV[5])
local quota, learned, reason = ARGV[6], ARGV[7], ARGV[8]
local now = redis_now()

local lease = unpack_lease(redis.call('GET', K.lease(lease_id)))
if not lease then
  -- The lease expired, or its holder was taken for dead (forfeit.lua): its slot is back.
  return {0, 'closed'}
end
local key, model, project = lease[1], lease[2], lease[3]
redis.call('DEL', K.lease(lease_id))
redis.call('ZREM', K.leases(), lease_id)
local key_state = K.key_state(key, model)
local project_state = K.project(project, model)
local model_state = K.model(model)
redis.call('HINCRBY', key_state, 'in_flight', -1)
-- Gemini counts a request in its minute when the request reaches it, some time after the
-- lease was granted (a new client's connection can take more than a second): the call's
-- place in the project's minute moves to now, when it has certainly been counted.
redis.call('ZADD', K.rpm(project, model), 'XX', 'GT', now, lease_id)

-- The model's circuit: it opens when every one of the model's last calls across the
-- cluster failed on Gemini's side (an outage, not the odd error); then one probe call at a
-- time finds out when Gemini is back. `history` holds the last outcomes, F or S.
local function circuit()
  return number(redis.call('HGET', model_state, 'open_until')) > 0 and 'open' or 'closed'
end
local function remember(history, letter, size)
  history = history .. letter
  if #history > size then history = string.sub(history, -size) end
  redis.call('HSET', model_state, 'history', history)
  return history
end

local function succeeded()
  local successes = redis.call('HINCRBY', key_state, 'successes', 1)
  redis.call('HINCRBY', key_state, 'tokens', tokens_used)
  redis.call('HSET', project_state, 'exhausted_count', 0)
  -- Replace the token estimate made at acquire with what Gemini counted.
  local tpm_key = K.tpm(project, model)
  local correction = tokens_used - tonumber(lease[4])
  if correction ~= 0 and redis.call('HEXISTS', tpm_key, lease[5]) == 1 then
    redis.call('HINCRBY', tpm_key, lease[5], correction)
    if correction < 0 then
      -- Tokens came back: keys held for the project's token window may be usable sooner.
      for _, member in ipairs(redis.call('SMEMBERS', K.members(project))) do
        for _, ready in ipairs(ready_sets(member, model)) do
          redis.call('ZADD', ready, 'XX', 'LT', now, member)
        end
      end
    end
  end
  if successes == 1 then
    -- Proven by this call: usable as soon as its cooldown allows, not when the probe wait
    -- that held it ends.
    local cooldown_until = number(redis.call('HGET', key_state, 'cooldown_until'))
    for _, ready in ipairs(ready_sets(key, model)) do
      redis.call('ZADD', ready, 'XX', 'LT', cooldown_until, key)
    end
  end
  local state = redis.call('HMGET', model_state, 'open_until', 'history', 'capacity_level')
  if state[1] then redis.call('HDEL', model_state, 'open_until', 'probe', 'level') end
  if state[2] and string.find(state[2], 'F') then
    remember(state[2], 'S', config('circuit_window').circuit_window or 20)
  end
  if number(state[3]) > 0 then redis.call('HSET', model_state, 'capacity_level', state[3] - 1) end
  return {0, 'closed'}
end

local function server_failed()
  redis.call('HINCRBY', key_state, 'failures', 1)
  local cfg = config('circuit_window', 'circuit_ratio', 'circuit_base', 'circuit_max')
  local size = cfg.circuit_window or 20
  local history = remember(redis.call('HGET', model_state, 'history') or '', 'F', size)
  local _, failures = string.gsub(history, 'F', '')
  local sustained = #history >= size and failures >= size * (cfg.circuit_ratio or 1)
  if lease[7] == '1' or (sustained and circuit() == 'closed') then
    local level = redis.call('HINCRBY', model_state, 'level', 1)
    local pause = math.min(cfg.circuit_max or 30, (cfg.circuit_base or 1) * 2 ^ (level - 1))
    redis.call('HSET', model_state, 'open_until', tostring(now + pause))
    redis.call('HDEL', model_state, 'probe')
  end
end

local function capacity_short()
  -- Gemini is short of capacity, not this project of quota: the whole model backs off
  -- briefly, and no project is marked exhausted.
  redis.call('HINCRBY', key_state, 'capacity_errors', 1)
  if tonumber(lease[6]) < number(redis.call('HGET', model_state, 'capacity_at')) then
    return  -- sent before the current backoff began: the same shortage, already waited out
  end
  local cfg = config('capacity_base', 'capacity_max')
  local most = cfg.capacity_max or 30
  local level = redis.call('HINCRBY', model_state, 'capacity_level', 1)
  local pause = math.min(most, (cfg.capacity_base or 1) * 2 ^ (level - 1))
  local until_ = now + math.max(pause, math.min(retry_delay, most))
  redis.call('HSET', model_state, 'backoff_until', tostring(until_), 'capacity_at', tostring(now))
end

local function key_refused()
  redis.call('HINCRBY', key_state, 'failures', 1)
  redis.call('HSET', K.key(key), 'failed_reason', reason, 'failed_at', tostring(now))
  for _, each in ipairs(redis.call('SMEMBERS', K.models())) do
    for _, ready in ipairs(ready_sets(key, each)) do redis.call('ZREM', ready, key) end
  end
end

local function learn()
  local rpm, tpm, rpd = string.match(learned, '^(%d+) (%d+) (%d+)$')
  if not rpm then return end
  local learned_key = K.learned(project, model)
  for name, value in pairs({rpm = rpm, tpm = tpm, rpd = rpd}) do
    if tonumber(value) > 0 then redis.call('HSET', learned_key, name, value) end
  end
end

local function quota_exceeded()
  redis.call('HINCRBY', key_state, 'quota_errors', 1)
  -- A refused request is not counted in the project's minute (the emulator's quotas.py
  -- admits or refuses, and counts only what it admits): it leaves the pool's too.
  redis.call('ZREM', K.rpm(project, model), lease_id)
  learn()
  local state = redis.call('HMGET', project_state, 'exhausted_at', 'exhausted_until')
  local count
  if tonumber(lease[6]) < number(state[1]) then
    -- Sent before the project's current exhaustion began: the same episode, not a new one.
    count = number(redis.call('HGET', project_state, 'exhausted_count'), 1)
  else
    count = redis.call('HINCRBY', project_state, 'exhausted_count', 1)
  end
  local cfg = config('max_exhausted_retries', 'fully_exhausted_wait', 'exhausted_wait',
    'max_retry_delay')
  local reset = next_reset(ARGV[9], now)
  local kind, until_
  if quota == 'zero' then
    -- The model has no quota on the project's tier: waiting does not help.
    kind, until_ = 'unavailable', now + 10 * 365 * 86400
  elseif quota == 'day' and reset then
    kind, until_ = 'daily', reset
  elseif count >= (cfg.max_exhausted_retries or 3) then
    kind, until_ = 'full', now + (cfg.fully_exhausted_wait or 43200)
  elseif quota == 'minute' and retry_delay > 0 and limits(project, model) > 0 then
    -- A per-minute quota the pool knows (configured, or learned just now): its pacing
    -- keeps the project under it from here, so the wait is Gemini's, not a fixed minute.
    kind, until_ = 'temporary', now + math.min(retry_delay, 60)
  else
    local delay = math.min(retry_delay, cfg.max_retry_delay or 86400)
    kind, until_ = 'temporary', now + math.max(cfg.exhausted_wait or 60, delay)
  end
  if until_ > number(state[2]) then
    redis.call('HSET', project_state, 'exhausted_until', tostring(until_),
      'exhausted_kind', kind, 'exhausted_at', tostring(now), 'reason', reason)
    hold_project(project, model, until_)
  end
  return {count, circuit()}
end

if outcome == 'success' then return succeeded() end
if outcome == 'quota' then return quota_exceeded() end
if outcome == 'server' then
  server_failed()
elseif outcome == 'capacity' then
  capacity_short()
elseif outcome == 'key_invalid' then
  key_refused()
elseif outcome == 'invalid_request' then
  redis.call('HINCRBY', key_state, 'invalid_requests', 1)
end
return {number(redis.call('HGET', project_state, 'exhausted_count')), circuit()}
