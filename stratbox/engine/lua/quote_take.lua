-- Take the quote ticks that are due (runtime.quote_take_*, the dispatcher's step). Each gets a seq:
-- epoch milliseconds, above the instance's last one (`qseq`), so it is unique and increasing and
-- serves as the tick's claim slot and client_order_id part; its start time is kept (`qlast`) for the
-- minimum interval. One no longer armed (paused, unloaded, switched to interval) is dropped. A tick
-- taken more than `stale` ago whose batch never ended (its worker died) is marked due again.
--
-- KEYS[1]  the due set    KEYS[2]  qdue    KEYS[3]  qbusy
-- ARGV[1]  key prefix     ARGV[2]  now     ARGV[3]  stale (seconds)    ARGV[4]  limit
-- Returns  a flat list: instance id, due time, seq (strings) per tick to enqueue.
local prefix, now, stale, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for _, iid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - stale)) do
  if redis.call('ZSCORE', KEYS[2], iid) == false then
    redis.call('ZADD', KEYS[2], now, iid)
    redis.call('ZADD', KEYS[3], now, iid)
  end
end
local items = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #items, 2 do
  local iid, due = items[i], items[i + 1]
  local rt = prefix .. 'rt:' .. iid
  redis.call('ZREM', KEYS[2], iid)
  if redis.call('ZSCORE', KEYS[1], iid) == false or redis.call('HGET', rt, 'trigger') ~= 'quote' then
    redis.call('ZREM', KEYS[3], iid)
    redis.call('HDEL', rt, 'qpending')
  else
    local seq = math.floor(now * 1000)
    local last = tonumber(redis.call('HGET', rt, 'qseq') or '0') or 0
    if seq <= last then seq = last + 1 end
    local text = string.format('%.0f', seq)
    redis.call('HSET', rt, 'qseq', text, 'qlast', ARGV[2])
    redis.call('ZADD', KEYS[3], now, iid)
    table.insert(out, iid)
    table.insert(out, due)
    table.insert(out, text)
  end
end
return out
