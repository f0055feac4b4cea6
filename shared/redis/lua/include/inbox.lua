-- Shared by the dm-*.lua scripts: scripts.ts inlines this file where a script has `-- @include inbox`,
-- after `-- @include frames` (int, frameTs).
-- Compensation members are `<encoded user>|<seq>` (keys.ts retry); encoded names hold no `|`, so
-- `<encoded recipient>|<encoded sender>` (keys.ts dmSenders) splits as plainly.

-- Redis TIME in ms: the store's clock, never a client's.
local function timeMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The inside of the JSON string of a name, from its encodeName token: %XX are UTF-8 bytes (escaped
-- when `"`, `\` or control), %uXXXX a lone surrogate, which only a JSON escape can carry.
local function nameJson(encoded)
  local s = string.gsub(encoded, '%%u(%x%x%x%x)', '\\u%1')
  s = string.gsub(s, '%%(%x%x)', function(h)
    local b = tonumber(h, 16)
    if b < 32 or b == 34 or b == 92 then return string.format('\\u%04x', b) end
    return string.char(b)
  end)
  return s
end

-- Takes a message's bookkeeping away once it left the inbox (ack, dead letter) or was found gone: its
-- compensation entry, its attempts, and its place in its sender's share of the inbox. The sender's
-- count goes down only when the message's sender entry was still there, so it stays exactly the number
-- of that sender's entries, and its field is deleted at 0 (no field outlives its messages).
-- `s` holds the slot's keys: rq (compensation set), ra (attempts), df (member -> sender), ds (counts).
local function settle(s, encUser, seq)
  local member = encUser .. '|' .. int(seq)
  redis.call('ZREM', s.rq, member)
  redis.call('HDEL', s.ra, member)
  local sender = redis.call('HGET', s.df, member)
  if sender then
    redis.call('HDEL', s.df, member)
    local field = encUser .. '|' .. sender
    if redis.call('HINCRBY', s.ds, field, -1) <= 0 then redis.call('HDEL', s.ds, field) end
  end
end

-- Moves one pending message to the slot's dead-letter list with its history (settling it as above),
-- then drops the list's oldest entries past s.maxDead. `attempts` nil means the count the hash holds.
-- `s` as for settle, plus dl (dead-letter list), slot, maxDead (deadLettersMaxPerSlot).
-- Returns how many old dead letters were dropped.
local function deadLetter(s, inbox, encUser, seq, frame, reason, attempts, now)
  local member = encUser .. '|' .. int(seq)
  if attempts == nil then attempts = tonumber(redis.call('HGET', s.ra, member) or '0') end
  redis.call('ZREMRANGEBYSCORE', inbox, seq, seq)
  settle(s, encUser, seq)
  local user = nameJson(encUser)
  local len = redis.call('RPUSH', s.dl, '{"id":"' .. s.slot .. ':' .. user .. ':' .. int(seq) .. '","user":"' .. user
    .. '","seq":' .. int(seq) .. ',"frame":' .. cjson.encode(frame) .. ',"attempts":' .. int(attempts)
    .. ',"reason":"' .. reason .. '","sentTs":' .. int(frameTs(frame) or 0) .. ',"ts":' .. int(now) .. '}')
  local over = len - s.maxDead
  if over <= 0 then return 0 end
  redis.call('LTRIM', s.dl, over, -1)
  return over
end

-- The distinct gateway nodes of a recipient's connections hash (conn -> node), space-separated (node
-- ids hold no space).
local function nodesOf(connsKey)
  local seen, out = {}, {}
  for _, node in ipairs(redis.call('HVALS', connsKey)) do
    if not seen[node] then
      seen[node] = true
      out[#out + 1] = node
    end
  end
  return table.concat(out, ' ')
end
