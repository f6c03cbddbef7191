-- Put prompts of a job back in its queue, in order: at the front, a prompt that must wait
-- longer than a worker thread should sleep (for a key, or while its job is paused) waits
-- here, in Redis, not in the worker; at the back, one that waits for another prompt (an
-- identical request being answered) lets the job's other prompts go first. With
-- `blocked_until`, the job is not fed again before then unless a worker can serve `model`
-- sooner (a key reset, quota back, new keys).
-- `carry` is what the prompt's next run goes on from (its waits and attempts so far).
-- KEYS     {p}:job:<job>, naming the hash slot of the job's keys
-- ARGV     tag, job, blocked_until (0: not blocked), model, carry (JSON, or ""),
--          "front" | "back", index, ...
-- Returns  the number of prompts put back.
local job, blocked_until, model, carry = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local back = ARGV[6] == 'back'
local first, last, step = #ARGV, 7, -1
if back then first, last, step = 7, #ARGV, 1 end
for i = first, last, step do
  redis.call(back and 'RPUSH' or 'LPUSH', K.todo(job), ARGV[i])
  redis.call('ZREM', K.inflight(job), ARGV[i])
  if carry ~= '' then redis.call('HSET', K.carry(job), ARGV[i], carry) end
end
if blocked_until > 0 then
  redis.call('HSET', K.job(job), 'blocked_until', tostring(blocked_until), 'model', model)
end
schedule(job)
return #ARGV - 6
