-- Sequences one message into a room's history, fenced by the slot lease. Atomic: lease check,
-- dedup, epoch, next seq, history entry, trimming and expiry happen together or not at all.
-- All keys share the slot's hash tag. Times come from Redis TIME only.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`)
-- KEYS[2] room meta (hash: seq, epoch)
-- KEYS[3] room history (zset scored by seq; member `<exclude conn>\n<frame>`, exclude '' for none)
-- KEYS[4] dedup key (string: first seq); only used when ARGV[6] == '1' (else any key of the tag)
-- ARGV[1] expected lease value `<owner>|<fence>`
-- ARGV[2] room as JSON   ARGV[3] from as JSON   ARGV[4] data as JSON
-- ARGV[5] mid as JSON, or '' when the message has no mid
-- ARGV[6] '1' to deduplicate by KEYS[4], '0' not to
-- ARGV[7] maxMessages   ARGV[8] maxAgeMs   ARGV[9] dedupWindowMs
-- ARGV[10] room ttlMs: idle meta and history expire after it (then a later use makes a new epoch)
-- ARGV[11] the connection to leave out on delivery (the sender without echo), or ''
--
-- Returns {seq, epoch, frame, duplicate (0|1)}. For a duplicate: the first seq, and its frame from
-- history or '' when it was trimmed. Error reply `NOT_OWNER ...` when the lease is not ARGV[1].

local lease, meta, hist, dedup = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local maxMessages = tonumber(ARGV[7])
local maxAgeMs = tonumber(ARGV[8])

if redis.call('GET', lease) ~= ARGV[1] then
  return redis.error_reply('NOT_OWNER slot lease not held')
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A new epoch also drops any history left from the previous one (meta and history expire separately).
local epochNew = t[1] .. string.format('%06d', tonumber(t[2]))
if redis.call('HSETNX', meta, 'epoch', epochNew) == 1 then
  redis.call('DEL', hist)
end
local epoch = redis.call('HGET', meta, 'epoch')

local dedupOn = ARGV[6] == '1'
if dedupOn then
  local first = redis.call('GET', dedup)
  if first then
    local found = redis.call('ZRANGEBYSCORE', hist, first, first)[1]
    local frame = ''
    if found then
      local nl = string.find(found, '\n', 1, true)
      frame = nl and string.sub(found, nl + 1) or found
    end
    return {tonumber(first), epoch, frame, 1}
  end
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
local midPart = ''
if ARGV[5] ~= '' then midPart = ',"mid":' .. ARGV[5] end
local frame = '{"t":"msg","room":' .. ARGV[2] .. ',"seq":' .. seq .. ',"from":' .. ARGV[3]
  .. ',"data":' .. ARGV[4] .. midPart .. ',"ts":' .. string.format('%.0f', nowMs) .. '}'
redis.call('ZADD', hist, seq, ARGV[11] .. '\n' .. frame)

redis.call('ZREMRANGEBYRANK', hist, 0, -(maxMessages + 1))
-- Age trim, bounded: frames end with `"ts":<ms>}`, and each append removes up to 64 old heads.
local cutoff = nowMs - maxAgeMs
local head = redis.call('ZRANGE', hist, 0, 63)
local old = 0
for i = 1, #head do
  local ts = tonumber(string.match(head[i], '"ts":(%d+)}$'))
  if ts == nil or ts >= cutoff then break end
  old = i
end
if old > 0 then redis.call('ZREMRANGEBYRANK', hist, 0, old - 1) end

if dedupOn then
  redis.call('SET', dedup, seq, 'PX', ARGV[9])
end
redis.call('PEXPIRE', meta, ARGV[10])
redis.call('PEXPIRE', hist, ARGV[10])

return {seq, epoch, frame, 0}
