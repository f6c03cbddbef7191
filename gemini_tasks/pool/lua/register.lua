-- Register a worker's keys as one key set, with the pool's settings and configured limits.
-- Run once when a worker starts (O(keys)); every later script names the set, not its keys.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, set, settings (JSON object), limits (JSON object: field -> "rpm tpm rpd"),
--          then per key: key_id, project, label
-- Returns  the number of keys in the set.
local set = ARGV[2]
local settings, limits = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
for name, value in pairs(settings) do redis.call('HSET', K.config(), name, tostring(value)) end
-- Configured limits are the cluster's: the last worker to start says what they are.
redis.call('DEL', K.limits())
for field, spec in pairs(limits) do redis.call('HSET', K.limits(), field, spec) end
for i = 5, #ARGV, 3 do
  local key, project, label = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', K.registry(), key, cjson.encode({label = label, project = project}))
  redis.call('HSET', K.key(key), 'project', project)
  redis.call('SADD', K.keyset(set), key)
  redis.call('SADD', K.holders(key), set)
  redis.call('SADD', K.members(project), key)
end
-- The ready indexes are rebuilt on next use, under the limits just written.
for _, model in ipairs(redis.call('SMEMBERS', K.models())) do
  redis.call('DEL', K.ready(set, model))
end
return redis.call('SCARD', K.keyset(set))
