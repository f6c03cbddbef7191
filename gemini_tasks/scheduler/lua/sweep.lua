-- Give back what dead workers held: a worker whose heartbeat is older than `dead_after`
-- is taken for dead, once: the messages it held (delivered, unacknowledged) go back to
-- their queues, the prompts it was feeding go back to the front of their jobs, the Batch
-- Mode batches it held are due for another worker's look at once, and it is
-- marked evicted so that, if it was only frozen, it stops instead of sending them twice.
-- KEYS     {p}:workers, naming the hash slot of the workers' keys
-- ARGV     tag, dead_after (seconds), kombu's unacked hash, kombu's unacked index
-- Returns  {messages restored, prompts restored, id of each worker evicted...}
local dead_after, unacked, unacked_index = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now = redis_now()

-- The queue a message goes back to: kombu's binding of its exchange and routing key.
local function queue_of(exchange, routing_key)
  for _, binding in ipairs(redis.call('SMEMBERS', '_kombu.binding.' .. exchange)) do
    local key, _, queue = string.match(binding, '^(.-)\6\22(.-)\6\22(.*)$')
    if key == routing_key then return queue end
  end
  return routing_key
end

-- The message text of an unacked entry ([message, exchange, routing key]), as kombu wrote
-- it, so that nothing in it is re-encoded on the way back.
local function restore(raw)
  local entry = cjson.decode(raw)
  local exchange, routing_key = entry[2], entry[3]
  local tail = ', ' .. cjson.encode(exchange) .. ', ' .. cjson.encode(routing_key) .. ']'
  local message
  if string.sub(raw, -#tail) == tail then
    message = string.sub(raw, 2, #raw - #tail)
  else
    message = cjson.encode(entry[1])
  end
  redis.call('RPUSH', queue_of(exchange, routing_key), message)
end

local out, messages, prompts = {0, 0}, 0, 0  -- out: the counts, then who was evicted
local beats = redis.call('HGETALL', K.workers())
for i = 1, #beats, 2 do
  local worker, beat = beats[i], tonumber(beats[i + 1])
  if now - beat > dead_after then
    for _, tag in ipairs(redis.call('SMEMBERS', K.held(worker))) do
      local raw = redis.call('HGET', unacked, tag)
      if raw then
        restore(raw)
        redis.call('HDEL', unacked, tag)
        redis.call('ZREM', unacked_index, tag)
        messages = messages + 1
      end
    end
    local transit = redis.call('HGETALL', K.transit(worker))
    for j = 1, #transit, 2 do
      local job, index = string.match(transit[j], '^(.*):(%d+)$')
      redis.call('LPUSH', K.todo(job), index)
      redis.call('ZREM', K.inflight(job), index)
      schedule(job)
      prompts = prompts + 1
    end
    for _, batch in ipairs(redis.call('SMEMBERS', K.holding(worker))) do
      redis.call('ZADD', K.batches(), 'XX', 0, batch)
    end
    redis.call('DEL', K.held(worker), K.transit(worker), K.holding(worker))
    redis.call('HDEL', K.workers(), worker)
    redis.call('SET', K.evicted(worker), tostring(now), 'EX', 86400)
    table.insert(out, worker)
  end
end
out[1], out[2] = messages, prompts
return out
