-- The models a key set can serve within `horizon` seconds: those whose circuit is closed
-- and not held by a capacity backoff, and whose ready index has a key usable by then (the
-- index's hint; a hint late by a project's window only delays the feeding of a job that
-- waited for a key, never sends a call early).
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, set, horizon
-- Returns  the model names.
local set, horizon = ARGV[2], tonumber(ARGV[3])
local now = redis_now()
local out = {}
for _, model in ipairs(redis.call('SMEMBERS', K.models())) do
  local blocked = model_wait(model, now, 0)
  if blocked <= horizon then
    local top = redis.call('ZRANGE', ensure_ready(set, model), 0, 0, 'WITHSCORES')
    if top[2] and tonumber(top[2]) <= now + horizon then table.insert(out, model) end
  end
end
return out
