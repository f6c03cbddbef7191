-- Form a Batch Mode batch: take up to `size` prompts from the front of one batch job's
-- queue (the highest priority first) into a batch record this worker now holds for `lease`
-- seconds. While a producer is still submitting the job, it waits for a full batch.
-- KEYS     {p}:workers, naming the hash slot every key below is in
-- ARGV     tag, queue, worker, size, lease, batch id
-- Returns  {batch id, job, round, index, ...} or {} when no batch job has prompts waiting;
--          `round` is how many batches its prompts were in before (the most of any).
local queue, worker, size, lease, id = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now = redis_now()
for _, level in ipairs(LEVELS) do
  local sched = K.sched(queue, level)
  for _, job in ipairs(redis.call('ZRANGE', sched, 0, 63)) do
    local info = redis.call('HMGET', K.job(job), 'state', 'mode')
    local waiting = redis.call('LLEN', K.todo(job))
    if info[2] == 'batch' then
      if not info[1] or STOPPED[info[1]] or waiting == 0 then
        redis.call('ZREM', sched, job)
      elseif waiting >= size or redis.call('EXISTS', K.submitter(job)) == 0 then
        local indexes = redis.call('LPOP', K.todo(job), size)
        -- Its share moves on as if each prompt had been fed: a job scheduled later starts
        -- from the others' virtual time, not from this one's.
        local weight = number(redis.call('HGET', K.job(job), 'weight'), 1)
        redis.call('ZINCRBY', sched, #indexes / weight, job)
        local round = 0
        for _, index in ipairs(indexes) do
          local carry = redis.call('HGET', K.carry(job), index)
          if carry then
            local ok, value = pcall(cjson.decode, carry)
            if ok and type(value) == 'table' then round = math.max(round, tonumber(value.batch_rounds) or 0) end
          end
        end
        redis.call('HSET', K.batch(id), 'job', job, 'state', 'formed', 'round', round,
          'indexes', cjson.encode(indexes), 'formed_at', tostring(now), 'owner', worker)
        redis.call('SADD', K.job_batches(job), id)
        redis.call('SADD', K.holding(worker), id)
        redis.call('ZADD', K.batches(), now + lease, id)
        local out = {id, job, round}
        for _, index in ipairs(indexes) do table.insert(out, index) end
        return out
      end
    end
  end
end
return {}
