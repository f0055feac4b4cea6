-- Shared by the dm-*.lua scripts: scripts.ts inlines this file where a script has `-- @include inbox`.
-- Compensation members are `<encoded user>|<seq>` (keys.ts retryMember); encoded names hold no `|`.

-- Redis TIME in ms: the store's clock, never a client's.
local function timeMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as digits: Lua's tostring turns large numbers into 1e+15 notation.
local function int(n)
  return string.format('%.0f', n)
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

-- A dm frame ends with `"ts":<ms>}` (its data never comes last).
local function frameTs(frame)
  return tonumber(string.match(frame, '"ts":(%d+)}$'))
end

-- Moves one pending message to the slot's dead-letter list with its history: out of the inbox, the
-- compensation set and the attempts hash. `attempts` nil means the count the hash holds.
local function deadLetter(dl, rq, ra, inbox, slot, encUser, seq, frame, reason, attempts, now)
  local member = encUser .. '|' .. int(seq)
  if attempts == nil then attempts = tonumber(redis.call('HGET', ra, member) or '0') end
  redis.call('ZREMRANGEBYSCORE', inbox, seq, seq)
  redis.call('ZREM', rq, member)
  redis.call('HDEL', ra, member)
  local user = nameJson(encUser)
  redis.call('RPUSH', dl, '{"id":"' .. slot .. ':' .. user .. ':' .. int(seq) .. '","user":"' .. user
    .. '","seq":' .. int(seq) .. ',"frame":' .. cjson.encode(frame) .. ',"attempts":' .. int(attempts)
    .. ',"reason":"' .. reason .. '","sentTs":' .. int(frameTs(frame) or 0) .. ',"ts":' .. int(now) .. '}')
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
