-- Claims the due entries of one slot's compensation set. Each due entry is, atomically:
--   dropped, when its message left the inbox (acknowledged meanwhile);
--   dead-lettered 'expired', when its message is older than inboxMaxAgeMs;
--   dead-lettered 'attempts', when maxAttempts deliveries were made;
--   else claimed: attempts + 1, rescheduled to now + backoff, and returned for delivery.
-- The rescheduling is the claim's lease: no other claimer sees the entry before its new score, and a
-- claimer that dies after claiming loses nothing (the entry comes due again then).
-- backoff = min(maxBackoffMs, ackTimeoutMs * 2^(attempt - 2)) * jitter, jitter uniform in [0.5, 1].
--
-- KEYS[1] slot compensation set (zset: `<encoded user>|<seq>` scored by next look, ms)
-- KEYS[2] slot attempts (hash)   KEYS[3] slot dead-letter list
-- KEYS[4] slot sender of each pending message (hash)   KEYS[5] slot per-sender counts (hash)
-- ARGV[1] slot   ARGV[2] inbox key prefix (keys.ts inboxPrefix: + encoded user = that user's inbox,
--         in the same slot)   ARGV[3] limit
-- ARGV[4] ackTimeoutMs   ARGV[5] maxBackoffMs   ARGV[6] maxAttempts   ARGV[7] inboxMaxAgeMs
-- ARGV[8] jitter seed (an integer the client picks at random: math.random is not random in scripts)
-- ARGV[9] connections key prefix (keys.ts userConnsPrefix: + encoded user = that user's connections)
-- ARGV[10] deadLettersMaxPerSlot
--
-- Returns {expired, outOfAttempts, dropped, {encodedUser1, seq1, frame1, attempt1, due1, nodes1, ...}}:
-- the dead-letter counts by reason, the old dead letters dropped past deadLettersMaxPerSlot, and the
-- claimed deliveries, `due` being the entry's new score and
-- `nodes` the gateways holding a connection of the recipient (space-separated).

-- @include frames
-- @include inbox

local rq, ra = KEYS[1], KEYS[2]
local s = {rq = rq, ra = ra, dl = KEYS[3], df = KEYS[4], ds = KEYS[5], slot = ARGV[1], maxDead = tonumber(ARGV[10])}
local inboxPrefix = ARGV[2]
local ackTimeoutMs, maxBackoffMs = tonumber(ARGV[4]), tonumber(ARGV[5])
local maxAttempts, maxAgeMs = tonumber(ARGV[6]), tonumber(ARGV[7])
math.randomseed(tonumber(ARGV[8]))

local now = timeMs()
local due = redis.call('ZRANGEBYSCORE', rq, '-inf', int(now), 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
local expired, outOfAttempts, dropped = 0, 0, 0
for _, member in ipairs(due) do
  local bar = string.find(member, '|', 1, true)
  local seq = bar and tonumber(string.sub(member, bar + 1))
  local found = {}
  if seq then
    found = redis.call('ZRANGEBYSCORE', inboxPrefix .. string.sub(member, 1, bar - 1), seq, seq, 'LIMIT', 0, 1)
  end
  if #found == 0 then
    if seq then
      settle(s, string.sub(member, 1, bar - 1), seq)
    else
      redis.call('ZREM', rq, member)
      redis.call('HDEL', ra, member)
    end
  else
    local encUser, frame = string.sub(member, 1, bar - 1), found[1]
    local inbox = inboxPrefix .. encUser
    local ts = frameTs(frame)
    if ts == nil or ts + maxAgeMs <= now then
      dropped = dropped + deadLetter(s, inbox, encUser, seq, frame, 'expired', nil, now)
      expired = expired + 1
    else
      local attempt = redis.call('HINCRBY', ra, member, 1)
      if attempt > maxAttempts then
        dropped = dropped + deadLetter(s, inbox, encUser, seq, frame, 'attempts', attempt - 1, now)
        outOfAttempts = outOfAttempts + 1
      else
        local backoff = math.min(maxBackoffMs, ackTimeoutMs * 2 ^ (attempt - 2))
        local at = now + math.max(1, math.floor(backoff * (0.5 + 0.5 * math.random())))
        redis.call('ZADD', rq, int(at), member)
        out[#out + 1] = encUser
        out[#out + 1] = seq
        out[#out + 1] = frame
        out[#out + 1] = attempt
        out[#out + 1] = at
        out[#out + 1] = nodesOf(ARGV[9] .. encUser)
      end
    end
  end
end
return {expired, outOfAttempts, dropped, out}
