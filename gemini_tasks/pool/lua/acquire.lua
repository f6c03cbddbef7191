-- Lease the least recently used usable key of a key set for one call, or say exactly how
-- long until one is usable and why.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, set, model, lease_id, tokens, resets
-- Returns  {"ok", key, now} | {"wait", seconds, reason} | {"none"} when every key has failed.
-- Cost     O(log n) in the key set's size: the ready index is ordered by when each key is
--          usable; a key found unusable for a reason the index did not know (its project's
--          window, exhaustion, a probe in flight) is re-scored and the next one looked at.
local set, model, lease_id = ARGV[2], ARGV[3], ARGV[4]
local tokens = tonumber(ARGV[5])
local now = redis_now()
local reset = next_reset(ARGV[6], now)
local cfg = config('window', 'lease_seconds', 'probe_wait', 'cooldown')
local window, lease_ttl = cfg.window or 61, cfg.lease_seconds or 150
local probe_wait, cooldown = cfg.probe_wait or 0.2, cfg.cooldown or 0

-- Leases of workers that died mid-call: give their in-flight slots back.
local leases = K.leases()
local oldest = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
if oldest[2] and tonumber(oldest[2]) <= now then
  for _, lost in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    local lease = unpack_lease(redis.call('GET', K.lease(lost)))
    if lease then
      redis.call('HINCRBY', K.key_state(lease[1], lease[2]), 'in_flight', -1)
      redis.call('DEL', K.lease(lost))
    end
  end
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
end

local blocked, why, probe = model_wait(model, now, probe_wait)
if blocked > 0 then return {'wait', tostring(blocked), why} end

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
  return {'ok', key, tostring(now)}
end

local ready = ensure_ready(set, model)
for _ = 1, 16 do
  local top = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  if #top == 0 then return {'none'} end
  local key, hint = top[1], tonumber(top[2])
  if hint > now then return {'wait', tostring(hint - now), 'keys'} end
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
return {'wait', '0', 'keys'}
