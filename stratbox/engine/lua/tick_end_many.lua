-- End successful ticks atomically (runtime.tick_end_many). Per tick: its state and fields, the
-- in-flight record dropped, dirty for the PostgreSQL snapshot, the counters, a block of event seqs
-- reserved and (if the token still holds it) its lock released.
--
-- KEYS[1]  the dirty set                  KEYS[2]  tick metrics list   KEYS[3]  order metrics list
-- ARGV[1]  key prefix, then per tick: iid, token, finished, events, orders, seq key, tick metric,
--          k, k order metrics, n, n field pairs
-- Returns  per tick, the last event seq reserved (INCRBY of its seq key).
local prefix = ARGV[1]
local out = {}
local i = 2
while i <= #ARGV do
  local iid, token, finished = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local events, orders, seq_key = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
  local metric, k = ARGV[i + 6], tonumber(ARGV[i + 7])
  local nf = tonumber(ARGV[i + 8 + k])
  local rt, stats = prefix .. 'rt:' .. iid, prefix .. 'stats:' .. iid
  redis.call('HSET', rt, unpack(ARGV, i + 9 + k, i + 8 + k + 2 * nf))
  redis.call('HDEL', rt, 'inflight')
  redis.call('SADD', KEYS[1], iid)
  redis.call('HINCRBY', stats, 'runs', 1)
  redis.call('HINCRBY', stats, 'ok', 1)
  if orders > 0 then redis.call('HINCRBY', stats, 'orders', orders) end
  redis.call('HSET', stats, 'last_run_at', finished)
  if metric ~= '' then redis.call('RPUSH', KEYS[2], metric) end
  if k > 0 then redis.call('RPUSH', KEYS[3], unpack(ARGV, i + 8, i + 7 + k)) end
  table.insert(out, redis.call('INCRBY', seq_key, events))
  local lock = prefix .. 'lock:' .. iid
  if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
  i = i + 9 + k + 2 * nf
end
return out
