-- Return a key to AVAILABLE for every model: clear its failure, its cooldowns and its
-- project's exhaustion. Counters are kept.
-- KEYS[1]  the key registry ({prefix}:keys)
-- ARGV     prefix, key_id, project
-- Returns  1 if the key is registered, else 0.
local prefix, key_id, project = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', KEYS[1], key_id) == 0 then return 0 end
redis.call('HDEL', prefix .. ':key:' .. key_id, 'failed_reason', 'failed_at')
for _, model in ipairs(redis.call('SMEMBERS', prefix .. ':models')) do
  redis.call('HSET', prefix .. ':key:' .. key_id .. ':' .. model, 'cooldown_until', 0)
  redis.call('HSET', prefix .. ':project:' .. project .. ':' .. model,
    'exhausted_until', 0, 'exhausted_count', 0, 'exhausted_kind', '')
end
return 1
