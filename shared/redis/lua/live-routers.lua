-- Lists routers whose heartbeat deadline is after Redis-now.
--
-- KEYS[1] routers (zset: router scored by its deadline, Redis time in ms)
--
-- Returns the routers, in score order (the caller sorts by name).

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', nowMs), '+inf')
