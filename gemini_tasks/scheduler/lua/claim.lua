-- Find the answer to a request, or the right to make it: the request's stored answer if
-- there is one; else its claim, taken if nobody holds it (or renewed if the caller does,
-- as a prompt run again after its worker died finds its own claim).
-- Runs on the result backend's Redis.
-- ARGV     tag, request digest, owner (the claiming prompt's task id), claim ttl
-- Returns  {'answer', answer} | {'lead'} | {'wait', holder}
local digest, owner = ARGV[2], ARGV[3]
local answer = redis.call('GET', K.answer(digest))
if answer then return {'answer', answer} end
local claim = K.claim(digest)
local holder = redis.call('GET', claim)
if holder and holder ~= owner then return {'wait', holder} end
redis.call('SET', claim, owner, 'EX', tonumber(ARGV[4]))
return {'lead'}
