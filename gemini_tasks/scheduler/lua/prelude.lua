-- Prepended to every scheduler script when it is loaded: what they all need, written once.
-- Every scheduler script takes the key prefix's hash tag as ARGV[1]; the key names mirror
-- gemini_tasks/keyspace.py (a test checks that both agree).
local TAG = ARGV[1]

-- K.name(...) is the Redis key `name` names, its parts filled in in order.
local PATTERNS = {
  jobs = '%s:jobs', active = '%s:active', job = '%s:job:%s', args = '%s:job:%s:args', todo = '%s:job:%s:todo',
  inflight = '%s:job:%s:inflight', rpm = '%s:job:%s:rpm', carry = '%s:job:%s:carry',
  submitter = '%s:submitter:%s',
  sched = '%s:sched:%s:%s', workers = '%s:workers', held = '%s:held:%s',
  transit = '%s:transit:%s', evicted = '%s:evicted:%s', counts = '%s:job:%s:counts',
  events = '%s:job:%s:events', failed = '%s:job:%s:failed:%s', metrics = '%s:job:%s:metrics',
  answer = '%s:answer:%s', claim = '%s:answer:%s:claim', answers = '%s:job:%s:answers',
  tickets = '%s:tickets', batch = '%s:batch:%s', batches = '%s:batches',
  job_batches = '%s:job:%s:batches', holding = '%s:holding:%s', batch_quota = '%s:batch_quota:%s',
}
local K = setmetatable({}, {__index = function(_, name)
  local pattern = PATTERNS[name]
  return function(...) return string.format(pattern, TAG, ...) end
end})

-- Priorities, highest first: a job at a higher level is fed before any at a lower one.
local LEVELS = {'high', 'normal', 'low'}
-- Job states whose prompts are not fed.
local STOPPED = {paused = true, cancelled = true, over_budget = true}

local function redis_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1000000
end

local function number(value, default)
  return tonumber(value) or default or 0
end

-- Put `job` among the jobs its queue feeds from, at its priority, unless it is there. It
-- starts at the least virtual time of its level: it gets its share from now on, with no
-- credit for the time it was away.
local function schedule(job)
  local info = redis.call('HMGET', K.job(job), 'queue', 'priority', 'state')
  if not info[1] or STOPPED[info[3]] then return end
  local sched = K.sched(info[1], info[2] or 'normal')
  if redis.call('ZSCORE', sched, job) then return end
  local least = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
  redis.call('ZADD', sched, least[2] or 0, job)
end

-- Take `job` out of every level of its queue's schedule.
local function unschedule(job)
  local queue = redis.call('HGET', K.job(job), 'queue')
  if not queue then return end
  for _, level in ipairs(LEVELS) do redis.call('ZREM', K.sched(queue, level), job) end
end
