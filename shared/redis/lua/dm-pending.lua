-- A recipient connected: returns their pending messages in seq order and re-arms each one (due at
-- now + ackTimeoutMs, attempts back to 1: the caller delivers them now). Messages older than
-- inboxMaxAgeMs are dead-lettered ('expired') instead. Bounded by inboxMaxMessages.
--
-- KEYS[1] recipient inbox (zset: frame scored by seq)
-- KEYS[2] slot compensation set   KEYS[3] slot attempts (hash)   KEYS[4] slot dead-letter list
-- KEYS[5] recipient meta (hash: seq)
-- KEYS[6] slot sender of each pending message (hash)   KEYS[7] slot per-sender counts (hash)
-- ARGV[1] slot   ARGV[2] recipient, encoded (encodeName)
-- ARGV[3] ackTimeoutMs   ARGV[4] inboxMaxAgeMs   ARGV[5] inboxMaxMessages   ARGV[6] deadLettersMaxPerSlot
--
-- Returns {expired, {frame1, seq1, frame2, seq2, ...}, head, dropped}: how many were dead-lettered,
-- the pending messages in seq order, the recipient's latest seq (0 before their first message, or once
-- their meta key expired: dm-append.lua), and the old dead letters dropped past deadLettersMaxPerSlot.

-- @include frames
-- @include inbox

local inbox, rq, ra = KEYS[1], KEYS[2], KEYS[3]
local s = {rq = rq, ra = ra, dl = KEYS[4], df = KEYS[6], ds = KEYS[7], slot = ARGV[1], maxDead = tonumber(ARGV[6])}
local encUser = ARGV[2]
local ackTimeoutMs, maxAgeMs = tonumber(ARGV[3]), tonumber(ARGV[4])

local now = timeMs()
local due = int(now + ackTimeoutMs)
local entries = redis.call('ZRANGE', inbox, 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
local out = {}
local expired, dropped = 0, 0
for i = 1, #entries, 2 do
  local frame, seq = entries[i], tonumber(entries[i + 1])
  local ts = frameTs(frame)
  if ts == nil or ts + maxAgeMs <= now then
    dropped = dropped + deadLetter(s, inbox, encUser, seq, frame, 'expired', nil, now)
    expired = expired + 1
  else
    local member = encUser .. '|' .. int(seq)
    redis.call('ZADD', rq, due, member)
    redis.call('HSET', ra, member, 1)
    out[#out + 1] = frame
    out[#out + 1] = entries[i + 1]
  end
end
return {expired, out, tonumber(redis.call('HGET', KEYS[5], 'seq') or '0'), dropped}
