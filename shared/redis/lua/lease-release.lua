-- Gives a slot lease up, only while it still holds the caller's value.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`)
-- ARGV[1] expected value `<owner>|<fence>`
--
-- Returns 1 when deleted, 0 when it was not the caller's.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
