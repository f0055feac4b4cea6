-- Removes one dead letter by id and returns it. Scans the list in pages of 1000 (an operator's action,
-- not a hot path); entries start with `{"id":"<slot>:<user>:<seq>",` exactly as include/inbox.lua
-- writes them, so the match is a prefix comparison.
--
-- KEYS[1] slot dead-letter list
-- ARGV[1] slot   ARGV[2] user, encoded (encodeName)   ARGV[3] seq
--
-- Returns the entry's JSON, or false when no such dead letter is there.

-- @include frames
-- @include inbox

local dl = KEYS[1]
local prefix = '{"id":"' .. ARGV[1] .. ':' .. nameJson(ARGV[2]) .. ':' .. ARGV[3] .. '",'
local page = 1000
local start = 0
while true do
  local entries = redis.call('LRANGE', dl, start, start + page - 1)
  for _, e in ipairs(entries) do
    if string.sub(e, 1, #prefix) == prefix then
      redis.call('LREM', dl, 1, e)
      return e
    end
  end
  if #entries < page then return false end
  start = start + page
end
