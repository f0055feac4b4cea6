-- The `msg` and `dm` frames clients receive, built here only (scripts.ts inlines this file where a
-- script has `-- @include frames`). Their layout, and why it is fixed: shared/protocol/stored-frames.ts,
-- whose builders the memory engine uses; test/contract/stored-frames.test.ts holds both to the same bytes.

-- Integers as digits: Lua's tostring turns large numbers into 1e+15 notation.
local function int(n)
  return string.format('%.0f', n)
end

local function midPart(midJson)
  if midJson == '' then return '' end
  return ',"mid":' .. midJson
end

-- Names, data and mid come as JSON text ('' for no mid); seq and ts as numbers.
local function msgFrame(roomJson, seq, fromJson, dataJson, midJson, ts)
  return '{"t":"msg","room":' .. roomJson .. ',"seq":' .. int(seq) .. ',"from":' .. fromJson .. ',"data":' .. dataJson
    .. midPart(midJson) .. ',"ts":' .. int(ts) .. '}'
end

local function dmFrame(seq, fromJson, dataJson, midJson, ts)
  return '{"t":"dm","seq":' .. int(seq) .. ',"from":' .. fromJson .. ',"data":' .. dataJson .. midPart(midJson)
    .. ',"ts":' .. int(ts) .. '}'
end

-- A frame ends with `"ts":<ms>}` (its data never comes last).
local function frameTs(frame)
  return tonumber(string.match(frame, '"ts":(%d+)}$'))
end
