-- Set a call's estimated cost aside from its job's budget before the call is sent, so
-- workers sending at once cannot together spend past the budget by more than what is in
-- flight. `finish` settles the reservation with what the call cost. Runs on the result
-- backend's Redis.
-- KEYS     {p}:job:<job>:counts
-- ARGV     tag, job, estimate
-- Returns  1 if it fits (or the job has no budget), 0 if it does not.
local counts = KEYS[1]
local state = redis.call('HMGET', counts, 'budget', 'cost', 'reserved')
local budget = tonumber(state[1]) or 0
local estimate = tonumber(ARGV[3])
if budget > 0 and (tonumber(state[2]) or 0) + (tonumber(state[3]) or 0) + estimate > budget then
  return 0
end
redis.call('HINCRBYFLOAT', counts, 'reserved', estimate)
return 1
