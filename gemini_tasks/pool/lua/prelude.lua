-- Prepended to every pool script when it is loaded: what they all need, written once.

-- Seconds since the epoch by the Redis server's clock, so skewed workers agree.
local function redis_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1000000
end

-- The first of the caller's daily-reset instants (comma-separated epoch seconds) after now.
local function next_reset(resets, now)
  for boundary in string.gmatch(resets, '[^,]+') do
    local value = tonumber(boundary)
    if value > now then return value end
  end
  return nil
end

