-- Marks a router alive until Redis-now + ttl and drops routers whose time has passed.
--
-- KEYS[1] routers (zset: router scored by its deadline, Redis time in ms)
-- ARGV[1] router   ARGV[2] ttlMs
--
-- Returns the deadline (ms).

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = nowMs + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', deadline), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', nowMs))
return deadline
