-- Sequences a batch of messages into room histories, fenced by the slot lease. Atomic: the lease check
-- and, for every message in order, dedup, epoch, next seq, history entry, trimming and expiry happen
-- together or not at all. All keys share the slot's hash tag. Times come from Redis TIME only (one
-- reading for the batch). A room may appear several times: its messages get consecutive seqs in order.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`)
-- then per message i = 0, 1, ...:
--   KEYS[2+3i] room meta (hash: seq, epoch)
--   KEYS[3+3i] room history (zset scored by seq; member `<exclude conn>\n<frame>`, exclude '' for none)
--   KEYS[4+3i] dedup key (string: first seq); only used when the message's dedup flag is '1'
-- ARGV[1] expected lease value `<owner>|<fence>`
-- ARGV[2] maxMessages   ARGV[3] maxAgeMs   ARGV[4] dedupWindowMs
-- ARGV[5] room ttlMs: idle meta and history expire after it (then a later use makes a new epoch)
-- then per message i:
--   ARGV[6+6i] room as JSON   ARGV[7+6i] from as JSON   ARGV[8+6i] data as JSON
--   ARGV[9+6i] mid as JSON, or '' when the message has no mid
--   ARGV[10+6i] '1' to deduplicate by its dedup key, '0' not to
--   ARGV[11+6i] the connection to leave out on delivery (the sender without echo), or ''
--
-- Returns {seq, epoch, frame, duplicate (0|1)} per message, flattened. For a duplicate: the first seq,
-- and its frame from history or '' when it was trimmed. Error reply `NOT_OWNER ...` when the lease is
-- not ARGV[1] (then nothing was written).

-- @include frames

local lease = KEYS[1]
local maxMessages = tonumber(ARGV[2])
local maxAgeMs = tonumber(ARGV[3])
local dedupWindowMs = ARGV[4]
local ttlMs = ARGV[5]

if redis.call('GET', lease) ~= ARGV[1] then
  return redis.error_reply('NOT_OWNER slot lease not held')
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epochNew = t[1] .. string.format('%06d', tonumber(t[2]))
local cutoff = nowMs - maxAgeMs

local out = {}
-- Rooms appended to: trimmed and their expiry pushed back once each, after the batch.
local touched = {}
local n = (#KEYS - 1) / 3
for i = 0, n - 1 do
  local meta, hist, dedup = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local a = 6 + 6 * i
  -- A new epoch also drops any history left from the previous one (meta and history expire separately).
  if redis.call('HSETNX', meta, 'epoch', epochNew) == 1 then
    redis.call('DEL', hist)
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  local dedupOn = ARGV[a + 4] == '1'
  local first = dedupOn and redis.call('GET', dedup)
  if first then
    local found = redis.call('ZRANGEBYSCORE', hist, first, first)[1]
    local frame = ''
    if found then
      local nl = string.find(found, '\n', 1, true)
      frame = nl and string.sub(found, nl + 1) or found
    end
    out[#out + 1] = tonumber(first)
    out[#out + 1] = epoch
    out[#out + 1] = frame
    out[#out + 1] = 1
  else
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    local frame = msgFrame(ARGV[a], seq, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], nowMs)
    redis.call('ZADD', hist, seq, ARGV[a + 5] .. '\n' .. frame)
    if dedupOn then redis.call('SET', dedup, seq, 'PX', dedupWindowMs) end
    touched[meta] = hist
    out[#out + 1] = seq
    out[#out + 1] = epoch
    out[#out + 1] = frame
    out[#out + 1] = 0
  end
end

for meta, hist in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', hist, 0, -(maxMessages + 1))
  -- Age trim, bounded: entries end with `"ts":<ms>}`; up to 64 old heads go per batch and room. The head
  -- is read one entry at a time: it is nearly always young enough, and then one entry is all it costs.
  for _ = 1, 64 do
    local head = redis.call('ZRANGE', hist, 0, 0)[1]
    if not head then break end
    local ts = frameTs(head)
    if ts == nil or ts >= cutoff then break end
    redis.call('ZREMRANGEBYRANK', hist, 0, 0)
  end
  redis.call('PEXPIRE', meta, ttlMs)
  redis.call('PEXPIRE', hist, ttlMs)
end
return out
