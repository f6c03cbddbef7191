-- Put prompts of a job back at the front of its queue, in order: a prompt that must wait
-- longer than a worker thread should sleep (for a key, or while its job is paused) waits
-- here, in Redis, not in the worker. With `blocked_until`, the job is not fed again before
-- then unless a worker can serve `model` sooner (a key reset, quota back, new keys).
-- `carry` is what the prompt's next run goes on from (its waits and attempts so far).
-- KEYS     {p}:job:<job>, naming the hash slot of the job's keys
-- ARGV     tag, job, blocked_until (0: not blocked), model, carry (JSON, or ""), index, ...
-- Returns  the number of prompts put back.
local job, blocked_until, model, carry = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
for i = #ARGV, 6, -1 do
  redis.call('LPUSH', K.todo(job), ARGV[i])
  redis.call('ZREM', K.inflight(job), ARGV[i])
  if carry ~= '' then redis.call('HSET', K.carry(job), ARGV[i], carry) end
end
if blocked_until > 0 then
  redis.call('HSET', K.job(job), 'blocked_until', tostring(blocked_until), 'model', model)
end
schedule(job)
return #ARGV - 5
