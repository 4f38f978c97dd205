-- Add or renew a watcher (watch.watch_touch). Scores come from the Redis server's clock.
--
-- KEYS[1]  the instance's watcher set
-- ARGV[1]  watcher id                     ARGV[2]  ttl (seconds)
-- Returns  the live watcher count.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]) * 1000))
return redis.call('ZCARD', KEYS[1])
