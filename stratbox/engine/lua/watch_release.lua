-- Drop a watcher on a clean disconnect (watch.watch_release).
--
-- KEYS[1]  the instance's watcher set
-- ARGV[1]  watcher id
-- Returns  the live watcher count left.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
