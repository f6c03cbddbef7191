-- End a lease and record what the call taught us about its key and its project.
-- KEYS[1]  the lease index ({prefix}:leases)
-- ARGV     prefix, lease_id, key_id, project, model, acquired_at, outcome, tokens_used,
--          retry_delay, quota_scope ("minute", "day" or ""), exhausted_wait,
--          fully_exhausted_wait, max_exhausted_retries, resets, reason
-- outcome  "success" | "quota" | "server" | "key_invalid" | "invalid_request"
-- Returns  the project's exhaustion count for this model after the call.
local prefix, lease_id, key_id, project, model = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local acquired_at, outcome = tonumber(ARGV[6]), ARGV[7]
local tokens_used, retry_delay, scope = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local exhausted_wait, fully_wait = tonumber(ARGV[11]), tonumber(ARGV[12])
local max_exhausted = tonumber(ARGV[13])
local now = redis_now()

local key_state = prefix .. ':key:' .. key_id .. ':' .. model
local project_state = prefix .. ':project:' .. project .. ':' .. model
local lease = prefix .. ':lease:' .. lease_id

-- A lease that already expired gave its in-flight slot back when it did.
local held = redis.call('HMGET', lease, 'tokens', 'second')
if held[1] then
  redis.call('HINCRBY', key_state, 'in_flight', -1)
  redis.call('DEL', lease)
  redis.call('ZREM', KEYS[1], lease_id)
  -- Replace the token estimate made at acquire with what Gemini counted.
  local tpm_key = prefix .. ':tpm:' .. project .. ':' .. model
  if outcome == 'success' and redis.call('HEXISTS', tpm_key, held[2]) == 1 then
    redis.call('HINCRBY', tpm_key, held[2], tokens_used - tonumber(held[1]))
  end
end

if outcome == 'success' then
  redis.call('HINCRBY', key_state, 'successes', 1)
  redis.call('HINCRBY', key_state, 'tokens', tokens_used)
  redis.call('HSET', project_state, 'exhausted_count', 0)
  return 0
elseif outcome == 'server' then
  redis.call('HINCRBY', key_state, 'failures', 1)
elseif outcome == 'invalid_request' then
  redis.call('HINCRBY', key_state, 'invalid_requests', 1)
elseif outcome == 'key_invalid' then
  redis.call('HINCRBY', key_state, 'failures', 1)
  redis.call('HSET', prefix .. ':key:' .. key_id, 'failed_reason', ARGV[15],
    'failed_at', tostring(now))
elseif outcome == 'quota' then
  redis.call('HINCRBY', key_state, 'quota_errors', 1)
  local state = redis.call('HMGET', project_state, 'exhausted_at', 'exhausted_until')
  local count
  if acquired_at < (tonumber(state[1]) or 0) then
    -- Sent before the project's current exhaustion began: the same episode, not a new one.
    count = tonumber(redis.call('HGET', project_state, 'exhausted_count')) or 1
  else
    count = redis.call('HINCRBY', project_state, 'exhausted_count', 1)
  end
  local reset = next_reset(ARGV[14], now)
  local kind, until_
  if scope == 'day' and reset then
    kind, until_ = 'daily', reset
  elseif count >= max_exhausted then
    kind, until_ = 'full', now + fully_wait
  else
    kind, until_ = 'temporary', now + math.max(exhausted_wait, retry_delay)
  end
  if until_ > (tonumber(state[2]) or 0) then
    redis.call('HSET', project_state, 'exhausted_until', tostring(until_),
      'exhausted_kind', kind, 'exhausted_at', tostring(now))
  end
  return count
end
return tonumber(redis.call('HGET', project_state, 'exhausted_count')) or 0
