-- Read and reset a counter hash atomically, so no increment between the read and the reset is
-- lost (snapshots.flush_all).
--
-- KEYS[1]  the counter hash
-- Returns  its HGETALL before the reset.
local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v
