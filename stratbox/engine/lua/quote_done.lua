-- The quote ticks of a batch ended (runtime.quote_done). Per instance: if a quote came while its
-- tick was queued or running (`qpending`) and it is still armed with trigger quote, it is marked due
-- again, once (at now, or its last start plus the minimum interval); otherwise it is idle and the
-- next quote marks it. One marked again meanwhile (the stale recovery) is left alone.
--
-- KEYS[1]  the due set    KEYS[2]  qdue    KEYS[3]  qbusy    KEYS[4]  the wake-up channel
-- ARGV[1]  key prefix     ARGV[2]  now     ARGV[3]  minimum interval (seconds)    ARGV[4..] ids
-- Returns  how many instances were marked due again.
local prefix, now, gap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local marked, wake = 0, false
for j = 4, #ARGV do
  local iid = ARGV[j]
  local rt = prefix .. 'rt:' .. iid
  if redis.call('ZSCORE', KEYS[2], iid) == false then
    local pending = redis.call('HGET', rt, 'qpending') == '1'
    redis.call('HDEL', rt, 'qpending')
    if pending and redis.call('ZSCORE', KEYS[1], iid) ~= false and redis.call('HGET', rt, 'trigger') == 'quote' then
      local at = now
      local last = tonumber(redis.call('HGET', rt, 'qlast') or '')
      if last and last + gap > at then at = last + gap end
      redis.call('ZADD', KEYS[3], now, iid)
      redis.call('ZADD', KEYS[2], at, iid)
      marked = marked + 1
      if at <= now then wake = true end
    else
      redis.call('ZREM', KEYS[3], iid)
    end
  end
end
if wake then redis.call('PUBLISH', KEYS[4], '1') end
return marked
