-- Mark the quote-triggered instances of markets that just got a quote (runtime.quote_mark, sent in
-- the quote writer's own pipeline). Per subscriber of each market (`qsubs:<market>`): skipped unless
-- armed (in the due set: loaded and not paused) with trigger quote, and dropped from the set once
-- unloaded. An idle one is marked busy and due at now, or at its last tick's start plus the minimum
-- interval (a hot market cannot flood it). A busy one whose tick was already taken (queued or
-- running) gets `qpending`: exactly one more tick follows it (`quote_done`), and reads the newest
-- quote; one still waiting to be taken reads this quote anyway.
--
-- KEYS[1]  the due set    KEYS[2]  qdue (instance -> start time)    KEYS[3]  qbusy (instance -> since)
-- KEYS[4]  the dispatchers' wake-up channel (a message: a tick is due now)
-- ARGV[1]  key prefix     ARGV[2]  now (epoch seconds)    ARGV[3]  minimum interval (seconds)
-- ARGV[4..] market ids
-- Returns  how many instances were marked due.
local prefix, now, gap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local marked, wake = 0, false
for j = 4, #ARGV do
  local subs = prefix .. 'qsubs:' .. ARGV[j]
  for _, iid in ipairs(redis.call('SMEMBERS', subs)) do
    local rt = prefix .. 'rt:' .. iid
    if redis.call('ZSCORE', KEYS[1], iid) == false or redis.call('HGET', rt, 'trigger') ~= 'quote' then
      if redis.call('HGET', rt, 'loaded') ~= '1' then redis.call('SREM', subs, iid) end
    elseif redis.call('ZSCORE', KEYS[3], iid) then
      if redis.call('ZSCORE', KEYS[2], iid) == false then redis.call('HSET', rt, 'qpending', '1') end
    else
      local at = now
      local last = tonumber(redis.call('HGET', rt, 'qlast') or '')
      if last and last + gap > at then at = last + gap end
      redis.call('ZADD', KEYS[3], now, iid)
      redis.call('ZADD', KEYS[2], at, iid)
      marked = marked + 1
      if at <= now then wake = true end
    end
  end
end
if wake then redis.call('PUBLISH', KEYS[4], '1') end
return marked
