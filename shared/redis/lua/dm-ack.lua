-- Settles one direct message: removes it from the inbox, the compensation set and the attempts hash,
-- and gives its sender's share of the inbox back (include/inbox.lua settle).
--
-- KEYS[1] recipient inbox (zset: frame scored by seq)
-- KEYS[2] slot compensation set   KEYS[3] slot attempts (hash)
-- KEYS[4] slot sender of each pending message (hash)   KEYS[5] slot per-sender counts (hash)
-- ARGV[1] recipient, encoded (encodeName)   ARGV[2] seq
--
-- Returns 1 when the message was pending, else 0.

-- @include frames
-- @include inbox

local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])
settle({rq = KEYS[2], ra = KEYS[3], df = KEYS[4], ds = KEYS[5]}, ARGV[1], tonumber(ARGV[2]))
if removed > 0 then return 1 end
return 0
