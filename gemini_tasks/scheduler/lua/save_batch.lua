-- Save fields of a batch record, unless the record is gone: another worker dropped it (its
-- job was cancelled or forgotten) while this one carried it, and a save must not bring it
-- back as a record nothing would ever end.
-- KEYS     {p}:workers, naming the hash slot every key below is in
-- ARGV     tag, batch id, field, value, field, value, ...
-- Returns  1 if saved, 0 if the record is gone
local record = K.batch(ARGV[2])
if redis.call('HEXISTS', record, 'job') == 0 then return 0 end
redis.call('HSET', record, unpack(ARGV, 3))
return 1
