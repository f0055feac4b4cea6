-- The recipient of a claimed delivery is offline: gives the claim's attempt back and lets the entry
-- wait until its message expires (then a claim dead-letters it), unless a connect re-arms it first.
-- Compare-and-set: acts only while the entry's score is still the claim's `due`.
--
-- KEYS[1] slot compensation set   KEYS[2] slot attempts (hash)
-- KEYS[3] recipient inbox (zset: frame scored by seq)
-- KEYS[4] slot sender of each pending message (hash)   KEYS[5] slot per-sender counts (hash)
-- ARGV[1] recipient, encoded (encodeName)   ARGV[2] seq   ARGV[3] due (the claim's new score)
-- ARGV[4] inboxMaxAgeMs
--
-- Returns 1 when parked, 0 when the entry changed or was settled.

-- @include frames
-- @include inbox

local rq, ra, inbox = KEYS[1], KEYS[2], KEYS[3]
local member = ARGV[1] .. '|' .. ARGV[2]
local score = redis.call('ZSCORE', rq, member)
if not score or tonumber(score) ~= tonumber(ARGV[3]) then return 0 end

local found = redis.call('ZRANGEBYSCORE', inbox, ARGV[2], ARGV[2], 'LIMIT', 0, 1)
if #found == 0 then
  settle({rq = rq, ra = ra, df = KEYS[4], ds = KEYS[5]}, ARGV[1], tonumber(ARGV[2]))
  return 0
end
if tonumber(redis.call('HGET', ra, member) or '0') > 1 then
  redis.call('HINCRBY', ra, member, -1)
end
redis.call('ZADD', rq, int((frameTs(found[1]) or 0) + tonumber(ARGV[4])), member)
return 1
