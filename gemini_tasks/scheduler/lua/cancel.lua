-- Cancel a job: it leaves the schedule at once, so no worker feeds another of its prompts,
-- and the prompts not yet fed are taken from its queue, a batch at a time, for the caller
-- to end as cancelled. Prompts already fed end as cancelled when a worker takes them, and
-- calls already in flight finish.
-- KEYS     {p}:job:<job>, naming the hash slot of the job's keys
-- ARGV     tag, job, most
-- Returns  up to `most` indexes taken from the job's queue (call again until empty).
local job, most = ARGV[2], tonumber(ARGV[3])
redis.call('HSET', K.job(job), 'state', 'cancelled')
unschedule(job)
local todo = K.todo(job)
local indexes = redis.call('LRANGE', todo, 0, most - 1)
redis.call('LTRIM', todo, most, -1)
return indexes
