-- A worker's heartbeat: it is alive, and so are the messages it holds. Refreshing their
-- delivery time in kombu's unacked index means the broker's visibility timeout runs from
-- the worker's last sign of life, not from when a message was delivered: a prompt may wait
-- for a key in a live worker for hours and is never handed to a second worker meanwhile.
-- KEYS     {p}:workers, naming the hash slot of the worker's keys
-- ARGV     tag, worker, threads, the name of kombu's unacked index
-- Returns  "ok", or "evicted" if the cluster took this worker for dead (it must stop).
local worker, threads, unacked_index = ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', K.evicted(worker)) == 1 then return 'evicted' end
local now = redis_now()
redis.call('HSET', K.workers(), worker, tostring(now))
for _, tag in ipairs(redis.call('SMEMBERS', K.held(worker))) do
  redis.call('ZADD', unacked_index, 'XX', now, tag)
end
return 'ok'
