-- Stop a job (cancelled, or over its budget): it leaves the schedule at once, so no worker
-- feeds another of its prompts, and the prompts not yet fed are taken from its queue, a
-- batch at a time, for the caller to end as cancelled (or over budget). Prompts already
-- fed end so when a worker takes them, and calls already in flight finish.
-- KEYS     {p}:job:<job>, naming the hash slot of the job's keys
-- ARGV     tag, job, state ("cancelled" or "over_budget"), most
-- Returns  up to `most` indexes taken from the job's queue (call again until empty).
local job, state, most = ARGV[2], ARGV[3], tonumber(ARGV[4])
redis.call('HSET', K.job(job), 'state', state)
unschedule(job)
local todo = K.todo(job)
local indexes = redis.call('LRANGE', todo, 0, most - 1)
redis.call('LTRIM', todo, most, -1)
return indexes
