-- End a claim on a request: store its answer for identical requests (unless the answer is
-- empty: the call failed, and whoever asks next makes it), named among the answers of the
-- job that paid for it (forgetting the job deletes them), then drop the claim if the caller
-- still holds it.
-- Runs on the result backend's Redis.
-- ARGV     tag, request digest, owner, answer (JSON, or ''), ttl, the owner's job
local digest, owner, answer, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if answer ~= '' then
  redis.call('SET', K.answer(digest), answer, 'EX', ttl)
  local answers = K.answers(ARGV[6])
  redis.call('SADD', answers, digest)
  redis.call('EXPIRE', answers, ttl)
end
local claim = K.claim(digest)
if redis.call('GET', claim) == owner then redis.call('DEL', claim) end
return 1
