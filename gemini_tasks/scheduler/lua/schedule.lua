-- Queue a batch of a job's prompts and put the job among those its queue feeds from (a
-- no-op for the schedule if it is there, paused or cancelled). All at once: a producer
-- interrupted mid-batch leaves either the whole batch and its new total, or neither, so
-- `submit --resume` goes on from a total that is true. With no prompts and no total, it
-- only schedules: when a paused job resumes, or a job changes priority.
-- KEYS     {p}:job:<job>, naming the hash slot of the job's keys
-- ARGV     tag, job, total ('' to leave it), ttl, submitter ttl, then index, task argument, ...
local job = ARGV[2]
if ARGV[3] ~= '' then
  local args, todo, ttl = K.args(job), K.todo(job), tonumber(ARGV[4])
  for i = 6, #ARGV, 2 do
    redis.call('HSET', args, ARGV[i], ARGV[i + 1])
    redis.call('RPUSH', todo, ARGV[i])
  end
  if #ARGV >= 6 then
    redis.call('EXPIRE', args, ttl)
    redis.call('EXPIRE', todo, ttl)
  end
  redis.call('HSET', K.job(job), 'total', ARGV[3])
  redis.call('SET', K.submitter(job), '1', 'EX', ARGV[5])
end
schedule(job)
return 1
