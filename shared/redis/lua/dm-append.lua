-- Stores one direct message in its recipient's inbox, fenced by the slot lease. Atomic: lease check,
-- dedup, limits, next per-recipient seq, inbox entry, compensation entry and the sender's count happen
-- together or not at all. All keys share the recipient's slot hash tag. Times come from Redis TIME only.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`)
-- KEYS[2] recipient meta (hash: seq; expires ARGV[13] ms after the last append, see below)
-- KEYS[3] recipient inbox (zset: frame scored by seq)
-- KEYS[4] slot compensation set (zset: `<encoded user>|<seq>` scored by next look, ms)
-- KEYS[5] slot attempts (hash: member -> deliveries while online)
-- KEYS[6] slot sender of each pending message (hash: member -> encoded sender)
-- KEYS[7] slot per-sender counts (hash: `<encoded user>|<encoded sender>` -> pending messages)
-- KEYS[8] dedup key (string: first seq); only used when ARGV[7] == '1' (else any key of the tag)
-- KEYS[9] recipient's connections (hash: conn -> gateway node; presence keeps it)
-- ARGV[1] expected lease value `<owner>|<fence>`   ARGV[2] slot
-- ARGV[3] recipient, encoded (encodeName)   ARGV[4] from as JSON   ARGV[5] data as JSON
-- ARGV[6] mid as JSON, or '' when the message has no mid
-- ARGV[7] '1' to deduplicate by KEYS[8], '0' not to
-- ARGV[8] ackTimeoutMs   ARGV[9] inboxMaxMessages   ARGV[10] dedupWindowMs
-- ARGV[11] sender, encoded (whose share of the inbox: DmRequest.by)   ARGV[12] inboxMaxPerSender
-- ARGV[13] meta TTL, ms (ports.ts dmMetaTtlMs: inboxMaxAgeMs + dedupWindowMs)
--
-- Returns {seq, frame, duplicate (0|1), inbox size after, nodes}: nodes are the gateways holding a
-- connection of the recipient, space-separated. The new message's compensation entry is due at
-- now + ackTimeoutMs with 1 attempt (the caller delivers at once). For a duplicate: the first seq, and
-- its frame while still pending, else ''. Error replies: `NOT_OWNER ...` when the lease is not ARGV[1];
-- `LIMIT ...` when the inbox holds inboxMaxMessages or the sender already has inboxMaxPerSender in it
-- (nothing is evicted to make room: that would let one sender erase what others sent).
--
-- Order: the lease first (a stale owner must not even answer a duplicate), then dedup (a repeated mid
-- is answered ok with its first seq even at a limit: the client is retrying what was stored), then
-- the limits.
--
-- The meta key is the only per-recipient key not emptied by settling: its TTL, refreshed here, keeps
-- it exactly as long as something can refer to its seqs (dedup entries, pending messages; ports.ts
-- dmMetaTtlMs). When it has lapsed, HINCRBY starts again at 1; should an expired message still be in
-- the inbox (no claim has looked at it yet), the seq continues after the inbox's highest one, so no two
-- pending messages share a seq.

-- @include frames
-- @include inbox

local lease, meta, inbox, rq, ra, df, ds, dedup, conns = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local encUser, encSender = ARGV[3], ARGV[11]

if redis.call('GET', lease) ~= ARGV[1] then
  return redis.error_reply('NOT_OWNER slot lease not held')
end

local now = timeMs()

local dedupOn = ARGV[7] == '1'
if dedupOn then
  local first = redis.call('GET', dedup)
  if first then
    local found = redis.call('ZRANGEBYSCORE', inbox, first, first)
    return {tonumber(first), found[1] or '', 1, redis.call('ZCARD', inbox), nodesOf(conns)}
  end
end

local senderField = encUser .. '|' .. encSender
if tonumber(redis.call('HGET', ds, senderField) or '0') >= tonumber(ARGV[12]) then
  return redis.error_reply('LIMIT too many of your messages are pending for this recipient')
end
if redis.call('ZCARD', inbox) >= tonumber(ARGV[9]) then
  return redis.error_reply("LIMIT the recipient's inbox is full")
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
if seq == 1 then
  local top = redis.call('ZRANGE', inbox, -1, -1, 'WITHSCORES')
  if top[2] then
    seq = tonumber(top[2]) + 1
    redis.call('HSET', meta, 'seq', int(seq))
  end
end
redis.call('PEXPIRE', meta, ARGV[13])

local frame = dmFrame(seq, ARGV[4], ARGV[5], ARGV[6], now)
redis.call('ZADD', inbox, seq, frame)
local member = encUser .. '|' .. int(seq)
redis.call('ZADD', rq, int(now + tonumber(ARGV[8])), member)
redis.call('HSET', ra, member, 1)
redis.call('HSET', df, member, encSender)
redis.call('HINCRBY', ds, senderField, 1)

if dedupOn then
  redis.call('SET', dedup, int(seq), 'PX', ARGV[10])
end

return {seq, frame, 0, redis.call('ZCARD', inbox), nodesOf(conns)}
