-- Choose the next prompts a worker feeds to the broker: from the highest priority level
-- first and, within a level, fair share between jobs (the job with the least virtual time
-- goes next; each prompt fed adds 1/weight to it). Jobs paused, cancelled or with nothing
-- to feed leave the schedule; jobs at their max_concurrency or max_rpm, or waiting for a
-- model none of this worker's keys can serve now, are passed over, and so are Batch Mode
-- jobs, whose prompts go to Gemini in batches (form.lua), not as messages.
-- KEYS     {p}:workers, naming the hash slot every key below is in
-- ARGV     tag, queue, want, worker, usable models ("*": all; else space-separated), least
-- Returns  {job, index, task argument, carry, ticket, ...} for up to `want` minus the
--          messages already queued, or nothing when that leaves room for fewer than
--          `least` (so a worker feeds in batches, not a round trip a prompt); each is recorded in the job's inflight set and in the
--          worker's transit hash until the worker has published it. The ticket numbers the
--          prompts in the order chosen, cluster-wide: the key pool serves waiting prompts in
--          that order (pool/lua/acquire.lua), so the choice made here holds when keys are few.
local queue, want, worker, usable = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local room = want - redis.call('LLEN', queue)
local out = {}
if room <= 0 or room < (tonumber(ARGV[6]) or 1) then return out end
local now = redis_now()

local function serves(model)
  if usable == '*' or not model then return true end
  return string.find(' ' .. usable .. ' ', ' ' .. model .. ' ', 1, true) ~= nil
end

-- Whether `job` may be fed now; false with `drop` when it should leave the schedule.
local function may_feed(job)
  local info = redis.call('HMGET', K.job(job), 'state', 'max_concurrency', 'max_rpm',
    'blocked_until', 'model', 'mode')
  if not info[1] or STOPPED[info[1]] then return false, true end
  if info[6] == 'batch' then return false, false end
  if redis.call('LLEN', K.todo(job)) == 0 then return false, true end
  local cap, rpm = number(info[2]), number(info[3])
  if cap > 0 and redis.call('ZCARD', K.inflight(job)) >= cap then return false, false end
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', K.rpm(job), '-inf', now - 60)
    if redis.call('ZCARD', K.rpm(job)) >= rpm then return false, false end
  end
  if number(info[4]) > now and not serves(info[5]) then return false, false end
  return true, false
end

-- Feed one prompt of `job`; false if it had none after all.
local function feed(job)
  local index = redis.call('LPOP', K.todo(job))
  if not index then return false end
  local record = redis.call('HGET', K.args(job), index)
  if not record then return true end  -- finished meanwhile (a duplicate): nothing to send
  redis.call('ZADD', K.inflight(job), now, index)
  redis.call('SADD', K.active(), job)
  if number(redis.call('HGET', K.job(job), 'max_rpm')) > 0 then
    redis.call('ZADD', K.rpm(job), now, index .. ':' .. tostring(now))
  end
  redis.call('HSET', K.transit(worker), job .. ':' .. index, tostring(now))
  table.insert(out, job)
  table.insert(out, index)
  table.insert(out, record)
  table.insert(out, redis.call('HGET', K.carry(job), index) or '')
  table.insert(out, redis.call('INCR', K.tickets()))
  room = room - 1
  return true
end

for _, level in ipairs(LEVELS) do
  if room <= 0 then break end
  local sched = K.sched(queue, level)
  local listed = redis.call('ZRANGE', sched, 0, 63, 'WITHSCORES')
  local jobs = {}
  for i = 1, #listed, 2 do
    local job = listed[i]
    local ok, drop = may_feed(job)
    if drop then
      redis.call('ZREM', sched, job)
    elseif ok then
      local weight = number(redis.call('HGET', K.job(job), 'weight'), 1)
      table.insert(jobs, {id = job, vt = tonumber(listed[i + 1]), weight = weight})
    end
  end
  while room > 0 and #jobs > 0 do
    local best = 1
    for i = 2, #jobs do if jobs[i].vt < jobs[best].vt then best = i end end
    local job = jobs[best]
    if feed(job.id) then
      job.vt = job.vt + 1 / job.weight
      redis.call('ZADD', sched, 'XX', job.vt, job.id)
    end
    local ok, drop = may_feed(job.id)
    if not ok then
      if drop then redis.call('ZREM', sched, job.id) end
      table.remove(jobs, best)
    end
  end
end
return out
