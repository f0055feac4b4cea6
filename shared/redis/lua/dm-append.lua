-- Stores one direct message in its recipient's inbox, fenced by the slot lease. Atomic: lease check,
-- dedup, next per-recipient seq, inbox entry, compensation entry and inbox trimming happen together
-- or not at all. All keys share the recipient's slot hash tag. Times come from Redis TIME only.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`)
-- KEYS[2] recipient meta (hash: seq)
-- KEYS[3] recipient inbox (zset: frame scored by seq)
-- KEYS[4] slot compensation set (zset: `<encoded user>|<seq>` scored by next look, ms)
-- KEYS[5] slot attempts (hash: member -> deliveries while online)
-- KEYS[6] slot dead-letter list
-- KEYS[7] dedup key (string: first seq); only used when ARGV[7] == '1' (else any key of the tag)
-- KEYS[8] recipient's connections (hash: conn -> gateway node; presence keeps it)
-- ARGV[1] expected lease value `<owner>|<fence>`   ARGV[2] slot
-- ARGV[3] recipient, encoded (encodeName)   ARGV[4] from as JSON   ARGV[5] data as JSON
-- ARGV[6] mid as JSON, or '' when the message has no mid
-- ARGV[7] '1' to deduplicate by KEYS[7], '0' not to
-- ARGV[8] ackTimeoutMs   ARGV[9] inboxMaxMessages   ARGV[10] dedupWindowMs
--
-- Returns {seq, frame, duplicate (0|1), dead-lettered 'inbox_full' (count), inbox size after, nodes}:
-- nodes are the gateways holding a connection of the recipient, space-separated. The new message's compensation entry is due at
-- now + ackTimeoutMs with 1 attempt (the caller delivers at once). For a duplicate: the first seq, and
-- its frame while still pending, else ''. Messages past inboxMaxMessages, oldest first, are
-- dead-lettered ('inbox_full'). Error reply `NOT_OWNER ...` when the lease is not ARGV[1].

-- @include inbox

local lease, meta, inbox, rq, ra, dl, dedup, conns = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local slot, encUser = ARGV[2], ARGV[3]
local maxMessages = tonumber(ARGV[9])

if redis.call('GET', lease) ~= ARGV[1] then
  return redis.error_reply('NOT_OWNER slot lease not held')
end

local now = timeMs()

local dedupOn = ARGV[7] == '1'
if dedupOn then
  local first = redis.call('GET', dedup)
  if first then
    local found = redis.call('ZRANGEBYSCORE', inbox, first, first)
    return {tonumber(first), found[1] or '', 1, 0, redis.call('ZCARD', inbox), nodesOf(conns)}
  end
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
local midPart = ''
if ARGV[6] ~= '' then midPart = ',"mid":' .. ARGV[6] end
local frame = '{"t":"dm","seq":' .. seq .. ',"from":' .. ARGV[4] .. ',"data":' .. ARGV[5] .. midPart
  .. ',"ts":' .. int(now) .. '}'
redis.call('ZADD', inbox, seq, frame)
local member = encUser .. '|' .. seq
redis.call('ZADD', rq, int(now + tonumber(ARGV[8])), member)
redis.call('HSET', ra, member, 1)

local over = redis.call('ZCARD', inbox) - maxMessages
if over < 0 then over = 0 end
if over > 0 then
  local old = redis.call('ZRANGE', inbox, 0, over - 1, 'WITHSCORES')
  for i = 1, #old, 2 do
    deadLetter(dl, rq, ra, inbox, slot, encUser, tonumber(old[i + 1]), old[i], 'inbox_full', nil, now)
  end
end

if dedupOn then
  redis.call('SET', dedup, seq, 'PX', ARGV[10])
end

return {seq, frame, 0, over, redis.call('ZCARD', inbox), nodesOf(conns)}
