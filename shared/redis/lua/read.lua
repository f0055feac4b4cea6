-- Reads a room's head and the frames after a seq, creating the room's epoch when absent.
-- Bounded: at most maxMessages frames come back.
--
-- KEYS[1] room meta (hash: seq, epoch)
-- KEYS[2] room history (zset scored by seq; member `<exclude conn>\n<frame>`, see append.lua)
-- ARGV[1] after (seq)   ARGV[2] maxMessages   ARGV[3] maxAgeMs   ARGV[4] room ttlMs (for a new meta)
--
-- Returns {headSeq, epoch, complete (0|1), entries} where entries is the ZRANGEBYSCORE WITHSCORES
-- list {member1, seq1, member2, seq2, ...} of every seq in (after, head], or {} when not complete.
-- complete = 1 when after == head, or every seq after `after` is in history and none is older than maxAgeMs.

local meta, hist = KEYS[1], KEYS[2]
local after = tonumber(ARGV[1])
local maxMessages = tonumber(ARGV[2])
local maxAgeMs = tonumber(ARGV[3])

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local epochNew = t[1] .. string.format('%06d', tonumber(t[2]))
if redis.call('HSETNX', meta, 'epoch', epochNew) == 1 then
  redis.call('DEL', hist)
  redis.call('PEXPIRE', meta, ARGV[4])
end
local epoch = redis.call('HGET', meta, 'epoch')
local head = tonumber(redis.call('HGET', meta, 'seq') or '0')

if after == head then return {head, epoch, 1, {}} end
-- History never holds more than maxMessages, so a longer gap cannot be complete.
if after > head or head - after > maxMessages then return {head, epoch, 0, {}} end

local entries = redis.call('ZRANGEBYSCORE', hist, after + 1, '+inf', 'WITHSCORES', 'LIMIT', 0, maxMessages)
if #entries ~= 2 * (head - after) or tonumber(entries[2]) ~= after + 1 then
  return {head, epoch, 0, {}}
end
-- Frames are in seq order with non-decreasing ts: the first one is the oldest needed.
local ts = tonumber(string.match(entries[1], '"ts":(%d+)}$'))
if ts == nil or ts < nowMs - maxAgeMs then return {head, epoch, 0, {}} end

return {head, epoch, 1, entries}
