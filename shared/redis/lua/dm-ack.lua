-- Settles one direct message: removes it from the inbox, the compensation set and the attempts hash.
--
-- KEYS[1] recipient inbox (zset: frame scored by seq)
-- KEYS[2] slot compensation set   KEYS[3] slot attempts (hash)
-- ARGV[1] recipient, encoded (encodeName)   ARGV[2] seq
--
-- Returns 1 when the message was pending, else 0.

local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])
local member = ARGV[1] .. '|' .. ARGV[2]
redis.call('ZREM', KEYS[2], member)
redis.call('HDEL', KEYS[3], member)
if removed > 0 then return 1 end
return 0
