-- Return a key to AVAILABLE for every model: clear its failure, its cooldowns, its
-- project's exhaustion and the limits its project's 429s taught (a reset often follows a
-- quota increase: the old limit would go on holding the project back), and put it back in
-- every ready index. Counters and configured limits are kept.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, key_id
-- Returns  1 if the key is registered, else 0.
local key = ARGV[2]
if redis.call('HEXISTS', K.registry(), key) == 0 then return 0 end
local project = redis.call('HGET', K.key(key), 'project')
local now = redis_now()
redis.call('HDEL', K.key(key), 'failed_reason', 'failed_at')
for _, model in ipairs(redis.call('SMEMBERS', K.models())) do
  redis.call('HSET', K.key_state(key, model), 'cooldown_until', 0)
  redis.call('HSET', K.project(project, model), 'exhausted_until', 0, 'exhausted_count', 0,
    'exhausted_kind', '', 'reason', '')
  redis.call('DEL', K.learned(project, model))
  for _, member in ipairs(redis.call('SMEMBERS', K.members(project))) do
    for _, ready in ipairs(ready_sets(member, model)) do
      redis.call('ZADD', ready, now, member)
    end
  end
end
return 1
