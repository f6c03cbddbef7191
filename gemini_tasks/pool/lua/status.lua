-- Everything the status view shows, read at one instant of the Redis clock.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, model, resets
-- Returns  a JSON object: now, the model's state, and per registered key its registry entry,
--          failure, per-model state and counters, and its project's state, window counts
--          and limits. O(keys): an operator's view, not a hot path.
local model = ARGV[2]
local now = redis_now()
local reset = next_reset(ARGV[3], now)
local window = config('window').window or 61

local function hash(name)
  local flat, out = redis.call('HGETALL', name), {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end

local keys = {}
local registry = redis.call('HGETALL', K.registry())
for i = 1, #registry, 2 do
  local key, entry = registry[i], cjson.decode(registry[i + 1])
  local project = entry.project
  local oldest = redis.call('ZRANGEBYSCORE', K.rpm(project, model), now - window, '+inf',
    'WITHSCORES')
  local tokens = 0
  local buckets = redis.call('HGETALL', K.tpm(project, model))
  for j = 1, #buckets, 2 do
    if tonumber(buckets[j]) + 1 > now - window then tokens = tokens + tonumber(buckets[j + 1]) end
  end
  local rpm, tpm, rpd = limits(project, model)
  keys[key] = {
    registry = entry,
    key = hash(K.key(key)),
    state = hash(K.key_state(key, model)),
    project = hash(K.project(project, model)),
    window_requests = #oldest / 2,
    window_oldest = oldest[2] and tonumber(oldest[2]) or cjson.null,
    window_tokens = tokens,
    day_requests = reset and number(redis.call('GET', K.rpd(project, model, reset))) or 0,
    limits = {rpm = rpm, tpm = tpm, rpd = rpd},
  }
end
return cjson.encode({now = now, model = hash(K.model(model)), keys = keys})
