-- Give back at once every lease of a worker taken for dead (scheduler/lua/sweep.lua),
-- rather than when each expires: a key it was calling with, an unproven key's one call, a
-- half-open circuit's probe. A worker's lease ids begin with its id and a slash. Walks
-- every lease in the cluster: it runs once a dead worker, not once a call.
-- A worker that was only frozen may still finish a call it had: its release then finds no
-- lease and records nothing (a key found invalid, a probe's answer), which the next call
-- on that key or model learns again; the key's rpm, tpm and rpd stay counted.
-- KEYS     {p}:config, naming the hash slot every key below is in
-- ARGV     tag, holder (a worker id)
-- Returns  how many leases were given back
local prefix = ARGV[2] .. '/'
local given = 0
for _, id in ipairs(redis.call('ZRANGE', K.leases(), 0, -1)) do
  if string.sub(id, 1, #prefix) == prefix then
    if drop_lease(id) then given = given + 1 end
    redis.call('ZREM', K.leases(), id)
  end
end
return given
