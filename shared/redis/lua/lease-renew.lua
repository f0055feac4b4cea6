-- Extends a slot lease only while it still holds the caller's value.
--
-- KEYS[1] slot lease (string `<owner>|<fence>`)
-- ARGV[1] expected value `<owner>|<fence>`   ARGV[2] ttlMs
--
-- Returns 1 when extended, 0 when the lease lapsed or belongs to someone else.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
