-- Admit a Batch Mode batch under its project's Batch Mode limits before it is created:
-- at most `concurrent` unfinished batches a project, and at most `limit` enqueued input
-- tokens a project and model (ai.google.dev/gemini-api/docs/rate-limits, Batch API; past
-- them Gemini answers the create 429, googleapis/python-genai#1901). A batch alone is
-- always admitted: the batcher cuts a batch at `limit` tokens.
-- KEYS     {p}:workers, naming the hash slot every key below is in
-- ARGV     tag, project, model, batch id, tokens, limit, concurrent
-- Returns  1 if admitted (or already), 0 if it must wait for a batch of the project to end
--          (or its record is gone)
local project, model, id = ARGV[2], ARGV[3], ARGV[4]
local tokens, limit, concurrent = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local book = K.batch_quota(project)
if redis.call('HEXISTS', K.batch(id), 'job') == 0 then return 0 end  -- dropped meanwhile
if redis.call('HEXISTS', book, id) == 1 then return 1 end
local count, enqueued = 0, 0
local entries = redis.call('HGETALL', book)
for i = 1, #entries, 2 do
  -- An entry whose batch record is gone was left by a worker that died as it dropped it.
  if redis.call('HEXISTS', K.batch(entries[i]), 'job') == 0 then
    redis.call('HDEL', book, entries[i])
  else
    count = count + 1
    local sep = string.find(entries[i + 1], '|', 1, true)
    if string.sub(entries[i + 1], sep + 1) == model then
      enqueued = enqueued + tonumber(string.sub(entries[i + 1], 1, sep - 1))
    end
  end
end
if count > 0 and (count >= concurrent or enqueued + tokens > limit) then return 0 end
redis.call('HSET', book, id, ARGV[5] .. '|' .. model)
return 1
