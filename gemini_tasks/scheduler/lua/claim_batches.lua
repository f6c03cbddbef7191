-- Take the batches due for a look (formed, being created or pending at Gemini) whose last
-- holder let them go or went silent: this worker holds each for `lease` seconds.
-- KEYS     {p}:workers, naming the hash slot every key below is in
-- ARGV     tag, worker, lease, most
-- Returns  the batch ids.
local worker, lease, most = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = redis_now()
local due = redis.call('ZRANGEBYSCORE', K.batches(), '-inf', now, 'LIMIT', 0, most)
for _, id in ipairs(due) do
  local before = redis.call('HGET', K.batch(id), 'owner')
  if before then redis.call('SREM', K.holding(before), id) end
  redis.call('ZADD', K.batches(), now + lease, id)
  redis.call('HSET', K.batch(id), 'owner', worker)
  redis.call('SADD', K.holding(worker), id)
end
return due
