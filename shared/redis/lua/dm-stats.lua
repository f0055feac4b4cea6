-- The size of one slot's compensation set, read against Redis TIME.
--
-- KEYS[1] slot compensation set (zset scored by next look, ms)
--
-- Returns {queued, due, oldestDueMs}: every entry, the entries whose time has come, and how long the
-- earliest of those is overdue (0 when none is due).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local queued = redis.call('ZCARD', KEYS[1])
local due = redis.call('ZCOUNT', KEYS[1], '-inf', string.format('%.0f', now))
local oldest = 0
if due > 0 then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  oldest = math.max(0, now - tonumber(first[2]))
end
return {queued, due, oldest}
