-- Choose the next prompts a worker feeds to the broker: from the highest priority level
-- first and, within a level, fair share between jobs (the job with the least virtual time
-- goes next; each prompt fed adds 1/weight to it). Jobs paused, cancelled or with nothing
-- to feed leave the schedule; jobs at their max_concurrency or max_rpm, or waiting for a
-- model none of this worker's keys can serve now, are passed over, and so are Batch Mode
-- jobs, whose prompts go to Gemini in batches (form.lua), not as messages.
-- The broker may hold `ahead` prompts more than the worker's free threads, so that it
-- feeds in batches; a job with a cap is fed only for free threads, so that its prompts
-- start as they are counted against it.
-- KEYS     {p}:workers, naming the hash slot every key below is in
-- ARGV     tag, queue, free, ahead, worker, usable models ("*": all; else space-separated),
--          least
-- Returns  {room, job, index, task argument, carry, ticket, ...}: the room found (free +
--          ahead, less the messages already queued), then up to that many prompts, or none
--          when the room is less than `least` (a worker feeds in batches, not a round trip
--          a prompt). Each prompt is recorded in the job's inflight set and in the worker's
--          transit hash until the worker has published it. The ticket numbers the prompts
--          in the order chosen, cluster-wide: the key pool serves waiting prompts in that
--          order (pool/lua/acquire.lua), so the choice made here holds when keys are few.
local queue, free, ahead = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local worker, usable, least = ARGV[5], ARGV[6], math.max(1, tonumber(ARGV[7]))
local queued = redis.call('LLEN', queue)
local room = free + ahead - queued
local out = {room}
if room < least then return out end
local capped_room = free - queued  -- what capped jobs may be fed: free threads only
local fed = 0
local now = redis_now()

local function serves(model)
  if usable == '*' or not model then return true end
  return string.find(' ' .. usable .. ' ', ' ' .. model .. ' ', 1, true) ~= nil
end

-- Whether `job` may be fed now; false with `drop` when it should leave the schedule; and
-- whether it has a cap.
local function may_feed(job)
  local info = redis.call('HMGET', K.job(job), 'state', 'max_concurrency', 'max_rpm',
    'blocked_until', 'model', 'mode')
  if not info[1] or STOPPED[info[1]] then return false, true end
  if info[6] == 'batch' then return false, false end
  if redis.call('LLEN', K.todo(job)) == 0 then return false, true end
  local cap, rpm = number(info[2]), number(info[3])
  local capped = cap > 0 or rpm > 0
  if capped and fed >= capped_room then return false, false end
  if cap > 0 and redis.call('ZCARD', K.inflight(job)) >= cap then return false, false end
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', K.rpm(job), '-inf', now - 60)
    if redis.call('ZCARD', K.rpm(job)) >= rpm then return false, false end
  end
  if number(info[4]) > now and not serves(info[5]) then return false, false end
  return true, false, capped
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
  room, fed = room - 1, fed + 1
  return true
end

for _, level in ipairs(LEVELS) do
  if room <= 0 then break end
  local sched = K.sched(queue, level)
  local listed = redis.call('ZRANGE', sched, 0, 63, 'WITHSCORES')
  local jobs = {}
  for i = 1, #listed, 2 do
    local job = listed[i]
    local ok, drop, capped = may_feed(job)
    if drop then
      redis.call('ZREM', sched, job)
    elseif ok then
      local weight = number(redis.call('HGET', K.job(job), 'weight'), 1)
      table.insert(jobs, {id = job, vt = tonumber(listed[i + 1]), weight = weight,
        capped = capped})
    end
  end
  while room > 0 and #jobs > 0 do
    local best = 1
    for i = 2, #jobs do if jobs[i].vt < jobs[best].vt then best = i end end
    local job = jobs[best]
    -- Other jobs' prompts may have taken the free threads since it was listed.
    if not (job.capped and fed >= capped_room) and feed(job.id) then
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
