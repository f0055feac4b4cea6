-- Takes a free slot lease and hands out the next fencing token.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`, with a TTL)
-- KEYS[2] slot fence (counter)
-- ARGV[1] owner   ARGV[2] ttlMs
--
-- Returns the new fence (integer), or nil (false) when the lease is held.
-- A missing counter (first use, or a wiped Redis) is seeded from Redis TIME in ms, so fences keep
-- growing across a wipe and an old lease value can never become valid again.

if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
if fence == 1 then
  local t = redis.call('TIME')
  fence = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', KEYS[2], string.format('%.0f', fence))
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%.0f', fence), 'PX', ARGV[2])
return fence
