-- Which instances have a live watcher? (watch.watched_instances)
--
-- KEYS     instance watcher sets
-- Returns  a 0/1 flag per key: does it hold a watcher that has not expired?
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf') > 0 and 1 or 0
end
return out
