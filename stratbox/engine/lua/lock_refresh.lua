-- Extend a lock to a full TTL if we still hold it (runtime.lock_refresh).
--
-- KEYS[1]  the lock key
-- ARGV[1]  our token                      ARGV[2]  TTL (ms)
-- Returns  1 when extended, 0 when the lock is no longer ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
