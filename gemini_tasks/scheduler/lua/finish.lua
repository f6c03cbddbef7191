-- Record one prompt's result, once: the result itself, the job's counts, its completion
-- stream and, for a failure, the index among the job's failures of its kind; and, for
-- Prometheus, its outcome by model and its latencies (counts a retry never takes back). A second run
-- of the same prompt (a redelivered message) finds the result there and changes nothing.
-- Runs on the result backend's Redis.
-- KEYS     the result's key (celery-task-meta-<job>-<index>)
-- ARGV     tag, job, index, result (Celery's JSON form), ttl, kind ("" for success),
--          prompt_tokens, output_tokens, thought_tokens, cached_tokens, rate_limited,
--          cost (not yet counted), model, the bucket (le) of its seconds from first start
--          to result, those seconds, the bucket of its seconds in calls, those seconds,
--          1 if it reused an identical request's answer (--dedupe) else 0, what its calls
--          would have cost online (Flex and Batch Mode cost less)
-- Returns  1 if recorded, 0 if the prompt already had a result.
local job, index, ttl, kind = ARGV[2], ARGV[3], tonumber(ARGV[5]), ARGV[6]
if redis.call('SET', KEYS[1], ARGV[4], 'NX', 'EX', ttl) == false then return 0 end
-- As Celery's Redis backend does, for a client waiting on AsyncResult.get().
redis.call('PUBLISH', KEYS[1], ARGV[4])
local events, counts = K.events(job), K.counts(job)
redis.call('XADD', events, '*', 'i', index, 'k', kind)
redis.call('HINCRBY', counts, 'done', 1)
if kind ~= '' then
  redis.call('HINCRBY', counts, 'failed', 1)
  redis.call('HINCRBY', counts, 'kind:' .. kind, 1)
  redis.call('SADD', K.failed(job, kind), index)
  redis.call('EXPIRE', K.failed(job, kind), ttl)
end
local summed = {'prompt_tokens', 'output_tokens', 'thought_tokens', 'cached_tokens', 'rate_limited'}
for i, name in ipairs(summed) do
  local value = tonumber(ARGV[6 + i])
  if value ~= 0 then redis.call('HINCRBY', counts, name, value) end
end
if tonumber(ARGV[12]) ~= 0 then redis.call('HINCRBYFLOAT', counts, 'cost', ARGV[12]) end
if ARGV[18] == '1' then redis.call('HINCRBY', counts, 'reused', 1) end
if tonumber(ARGV[19]) ~= 0 then redis.call('HINCRBYFLOAT', counts, 'online_cost', ARGV[19]) end
local metrics = K.metrics(job)
redis.call('HINCRBY', metrics, 'p:' .. ARGV[13] .. ':' .. (kind == '' and 'ok' or kind), 1)
redis.call('HINCRBY', metrics, 'prompt:' .. ARGV[14], 1)
redis.call('HINCRBYFLOAT', metrics, 'prompt_sum', ARGV[15])
redis.call('HINCRBY', metrics, 'api:' .. ARGV[16], 1)
redis.call('HINCRBYFLOAT', metrics, 'api_sum', ARGV[17])
redis.call('EXPIRE', metrics, ttl)
redis.call('EXPIRE', events, ttl)
redis.call('EXPIRE', counts, ttl)
return 1
