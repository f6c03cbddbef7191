-- Forget the results of a job's prompts that failed with `kind`, so they can run again:
-- each result is deleted and taken out of the counts. Runs on the result backend's Redis.
-- KEYS     {p}:job:<job>:counts, naming the hash slot of the job's keys
-- ARGV     tag, job, kind, the prefix of result keys (celery-task-meta-<job>-), most
-- Returns  the indexes forgotten (at most `most`; call again for more).
local job, kind, prefix, most = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local failed, counts = K.failed(job, kind), K.counts(job)
local indexes = redis.call('SPOP', failed, most)
for _, index in ipairs(indexes) do
  if redis.call('DEL', prefix .. index) == 1 then
    redis.call('HINCRBY', counts, 'done', -1)
    redis.call('HINCRBY', counts, 'failed', -1)
    redis.call('HINCRBY', counts, 'kind:' .. kind, -1)
  end
end
return indexes
