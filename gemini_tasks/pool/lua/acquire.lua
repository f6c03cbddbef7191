-- Lease the fairest usable key for one call, or say exactly how long until one is usable.
-- KEYS[1]  the lease index ({prefix}:leases); every other key shares its hash tag.
-- ARGV     prefix, model, lease_id, lease_ttl, cooldown, tokens, window, resets, probe_wait,
--          then per candidate key: key_id, project, rpm, tpm, rpd
-- Returns  {"ok", key_id, now} | {"wait", seconds} | {"none"} when every key has failed.
local prefix, model, lease_id = ARGV[1], ARGV[2], ARGV[3]
local lease_ttl, cooldown = tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens, window = tonumber(ARGV[6]), tonumber(ARGV[7])
local probe_wait = tonumber(ARGV[9])
local now = redis_now()
-- The next daily reset (midnight in America/Los_Angeles) among those the caller computed.
local reset = next_reset(ARGV[8], now)

-- Leases of workers that died mid-call: give their in-flight slots back.
local leases = KEYS[1]
for _, lost in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
  local lease = redis.call('HMGET', prefix .. ':lease:' .. lost, 'key', 'model')
  if lease[1] then
    redis.call('HINCRBY', prefix .. ':key:' .. lease[1] .. ':' .. lease[2], 'in_flight', -1)
    redis.call('DEL', prefix .. ':lease:' .. lost)
  end
end
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)

local function names(project)
  local base = project .. ':' .. model
  return prefix .. ':project:' .. base, prefix .. ':rpm:' .. base, prefix .. ':tpm:' .. base,
    reset and (prefix .. ':rpd:' .. base .. ':' .. string.format('%d', reset)) or nil
end

-- When this project may next send a request of `tokens` to `model` (now if it may now).
local function project_free_at(project, rpm, tpm, rpd)
  local state, rpm_key, tpm_key, rpd_key = names(project)
  local free_at = now
  local exhausted = tonumber(redis.call('HGET', state, 'exhausted_until')) or 0
  if exhausted > free_at then free_at = exhausted end
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', rpm_key, '-inf', now - window)
    local count = redis.call('ZCARD', rpm_key)
    if count >= rpm then
      -- Free once the oldest (count - rpm + 1) requests have left the window.
      local entry = redis.call('ZRANGE', rpm_key, count - rpm, count - rpm, 'WITHSCORES')
      free_at = math.max(free_at, tonumber(entry[2]) + window)
    end
  end
  if tpm > 0 then
    local buckets, used = {}, 0
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
  if rpd > 0 and rpd_key then
    if (tonumber(redis.call('GET', rpd_key)) or 0) >= rpd then
      free_at = math.max(free_at, reset)
    end
  end
  return free_at
end

local best, best_project, best_used, best_limits, next_free = nil, nil, nil, nil, nil
local project_free = {}
for i = 10, #ARGV, 5 do
  local key_id, project = ARGV[i], ARGV[i + 1]
  local rpm, tpm, rpd = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  if redis.call('HEXISTS', prefix .. ':key:' .. key_id, 'failed_reason') == 0 then
    local state = redis.call('HMGET', prefix .. ':key:' .. key_id .. ':' .. model,
      'cooldown_until', 'last_used', 'successes', 'in_flight')
    local free_at = math.max(now, tonumber(state[1]) or 0)
    if (tonumber(state[3]) or 0) == 0 and (tonumber(state[4]) or 0) > 0 then
      -- An unproven key gets one call at a time until it succeeds: an invalid key then
      -- costs the cluster one call, not one per thread.
      free_at = math.max(free_at, now + probe_wait)
    end
    if project_free[project] == nil then
      project_free[project] = project_free_at(project, rpm, tpm, rpd)
    end
    free_at = math.max(free_at, project_free[project])
    if free_at <= now then
      -- Least recently used first: every usable key gets its turn.
      local used = tonumber(state[2]) or 0
      if best == nil or used < best_used then
        best, best_project, best_used, best_limits = key_id, project, used, {rpm, tpm, rpd}
      end
    elseif next_free == nil or free_at < next_free then
      next_free = free_at
    end
  end
end

if best == nil then
  if next_free == nil then return {'none'} end
  return {'wait', tostring(next_free - now)}
end

local key_state = prefix .. ':key:' .. best .. ':' .. model
redis.call('HSET', key_state, 'last_used', tostring(now), 'cooldown_until', tostring(now + cooldown))
redis.call('HINCRBY', key_state, 'in_flight', 1)
redis.call('HINCRBY', key_state, 'requests', 1)
redis.call('SADD', prefix .. ':models', model)
local _, rpm_key, tpm_key, rpd_key = names(best_project)
local second = math.floor(now)
if best_limits[1] > 0 then
  redis.call('ZADD', rpm_key, now, lease_id)
  redis.call('EXPIRE', rpm_key, math.ceil(window * 2))
end
if best_limits[2] > 0 then
  redis.call('HINCRBY', tpm_key, second, tokens)
  redis.call('EXPIRE', tpm_key, math.ceil(window * 2))
end
if best_limits[3] > 0 and rpd_key then
  redis.call('INCR', rpd_key)
  redis.call('EXPIREAT', rpd_key, math.ceil(reset) + 3600)
end
local lease = prefix .. ':lease:' .. lease_id
redis.call('HSET', lease, 'key', best, 'model', model, 'project', best_project,
  'tokens', tokens, 'second', second)
redis.call('EXPIRE', lease, math.ceil(lease_ttl) + 60)
redis.call('ZADD', leases, now + lease_ttl, lease_id)
return {'ok', best, tostring(now)}
