-- Give back at once every lease of a worker taken for dead (scheduler/lua/sweep.lua),
-- rather than when each expires: a key it was calling with, an unproven key's one call, a
-- half-open circuit's probe. A worker's lease ids begin with its id and a slash. Walks
-- every lease in the cluster: it runs once a dead worker, not once a call.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, holder (a worker id)
-- Returns  how many leases were given back
local prefix = ARGV[2] .. '/'
local given = 0
for _, id in ipairs(redis.call('ZRANGE', K.leases(), 0, -1)) do
  if string.sub(id, 1, #prefix) == prefix then
    give_back(id)
    redis.call('ZREM', K.leases(), id)
    given = given + 1
  end
end
return given
