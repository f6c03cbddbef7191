-- Everything the status view shows, read at one instant of the Redis clock.
-- KEYS[1]  the key registry ({prefix}:keys)
-- ARGV     prefix, model, window, resets
-- Returns  a JSON object: now, and per registered key its registry entry, failure,
--          per-model state and counters, and its project's state and window counts.
local prefix, model, window = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = redis_now()
local reset = next_reset(ARGV[4], now)

local function hash(name)
  local flat, out = redis.call('HGETALL', name), {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end

local keys = {}
local registry = redis.call('HGETALL', KEYS[1])
for i = 1, #registry, 2 do
  local key_id, entry = registry[i], cjson.decode(registry[i + 1])
  local base = entry.project .. ':' .. model
  local rpm_key = prefix .. ':rpm:' .. base
  local oldest = redis.call('ZRANGEBYSCORE', rpm_key, now - window, '+inf', 'WITHSCORES')
  local tokens = 0
  local buckets = redis.call('HGETALL', prefix .. ':tpm:' .. base)
  for j = 1, #buckets, 2 do
    if tonumber(buckets[j]) + 1 > now - window then tokens = tokens + tonumber(buckets[j + 1]) end
  end
  keys[key_id] = {
    registry = entry,
    key = hash(prefix .. ':key:' .. key_id),
    state = hash(prefix .. ':key:' .. key_id .. ':' .. model),
    project = hash(prefix .. ':project:' .. base),
    window_requests = #oldest / 2,
    window_oldest = oldest[2] and tonumber(oldest[2]) or cjson.null,
    window_tokens = tokens,
    day_requests = reset and tonumber(redis.call('GET', prefix .. ':rpd:' .. base .. ':'
      .. string.format('%d', reset)) or '0') or 0,
  }
end
return cjson.encode({now = now, reset = reset, keys = keys})
