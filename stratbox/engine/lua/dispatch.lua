-- Take the due slots: the dispatcher's one atomic step (runtime.due_take).
--
-- Picks instances due up to `now + lookahead`, advances each to its next slot (its phase on the
-- schedule's grid) and marks the slot queued. If the newest slot a worker started for the instance
-- (`started_slot`, set when a tick begins) is older than two periods plus `grace`, the cluster is
-- behind: the new slot is coalesced and counted instead of queued, so a slow cluster never builds an
-- unbounded backlog, however far ahead slots are queued. A queued slot older than `stale` is presumed
-- lost (its worker died) and the instance is queued again.
--
-- KEYS[1]  the due set (sorted set: instance id -> next due time)
-- ARGV[1]  now (epoch seconds)           ARGV[2]  limit (most items taken)
-- ARGV[3]  stale (seconds)               ARGV[4]  key prefix (rt:<iid>, stats:<iid> under it)
-- ARGV[5]  lookahead (seconds)           ARGV[6]  grace (seconds)
-- ARGV[7]  grid (the dispatch interval, seconds; 0 = no grid)
-- Returns  a flat list: instance id, slot (as a string), for each slot to enqueue.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local stale = tonumber(ARGV[3])
local prefix = ARGV[4]
local lookahead = tonumber(ARGV[5])
local grace = tonumber(ARGV[6])
local grid = tonumber(ARGV[7])
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + lookahead, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #items, 2 do
  local iid = items[i]
  local due = tonumber(items[i + 1])
  local rt = prefix .. 'rt:' .. iid
  if redis.call('HGET', rt, 'loaded') ~= '1' or redis.call('HGET', rt, 'paused') == '1' then
    redis.call('ZREM', KEYS[1], iid)
  else
    local freq = tonumber(redis.call('HGET', rt, 'freq') or '1') or 1
    if freq < 1 then freq = 1 end
    local k = 0
    if due < now then k = math.floor((now - due) / freq) end
    local slot = due + k * freq
    local nxt = slot + freq
    if grid > 0.001 then
      -- A phase off the grid (scheduled before the grid, or under another interval) moves down to
      -- it. The tolerance is far above a float's error at epoch seconds (~2.4e-7).
      local second = math.floor(nxt)
      local aligned = math.floor((nxt - second) / grid + 1e-4) * grid
      if (nxt - second) - aligned > 1e-4 then nxt = second + aligned end
    end
    redis.call('ZADD', KEYS[1], nxt, iid)
    redis.call('HSET', rt, 'next_due_at', tostring(nxt))
    local missed = k
    local qslot = tonumber(redis.call('HGET', rt, 'queued_slot') or '')
    local started = tonumber(redis.call('HGET', rt, 'started_slot') or '')
    -- Behind: slots are queued ahead (lookahead), but the newest one a worker started began more
    -- than two periods plus the grace ago (two: a slot coalesced earlier is never started, and
    -- must not make the next one look late). Lost: the newest queued slot is older than `stale`
    -- (its worker died with it, or a paused instance came back): queue again.
    local phase = due - math.floor(due)
    local behind = (started ~= nil and (now - started - phase) >= 2 * freq + grace) or
                   (started == nil and qslot ~= nil and (now - qslot) >= grace)
    if qslot and behind and (now - qslot) < stale then
      missed = missed + 1
    else
      redis.call('HSET', rt, 'queued_slot', tostring(slot))
      table.insert(out, iid)
      table.insert(out, tostring(slot))
    end
    if missed > 0 then
      redis.call('HINCRBY', rt, 'coalesced_ticks', missed)
      redis.call('HINCRBY', prefix .. 'stats:' .. iid, 'coalesced', missed)
    end
  end
end
return out
