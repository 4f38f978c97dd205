-- Start ticks in one round trip (runtime.tick_begin_many). Per item: claim the slot (a replay is a
-- no-op), clear its "queued" mark, take the instance lock and read the runtime hash. A claim lives
-- the claim TTL plus two periods: longer than a slot can still run (a later tick, or the lateness
-- bound, refuses an older slot), so a day of 1-second ticks does not leave 86,400 keys per instance.
--
-- KEYS     (claim, lock, rt) per item
-- ARGV[1]  the claim's value (worker id)  ARGV[2]  claim TTL (seconds)  ARGV[3]  lock TTL (ms)
-- ARGV     then (token, slot) per item
-- Returns  per item: {'duplicate'} | {'busy'} | {'ok', HGETALL of rt}
local out = {}
local n = #KEYS / 3
for i = 1, n do
  local claim, lock, rt = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local token, slot = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local freq = tonumber(redis.call('HGET', rt, 'freq') or '1') or 1
  local ttl = tonumber(ARGV[2]) + 2 * math.max(freq, 1)
  if redis.call('SET', claim, ARGV[1], 'NX', 'EX', ttl) == false then
    out[i] = {'duplicate'}
  else
    local queued = tonumber(redis.call('HGET', rt, 'queued_slot') or '')
    if queued and math.floor(queued) == tonumber(slot) then redis.call('HDEL', rt, 'queued_slot') end
    redis.call('HSET', rt, 'started_slot', slot)
    if redis.call('SET', lock, token, 'NX', 'PX', ARGV[3]) == false then
      out[i] = {'busy'}
    else
      out[i] = {'ok', redis.call('HGETALL', rt)}
    end
  end
end
return out
