-- May these instances render now? (rendering._grant)
--
-- KEYS     per instance: rt hash, rate-limit marker (pairs)
-- ARGV[1]  interval ms (0 = no limit)
-- Returns  a 0/1 flag per instance: loaded, not paused, and the rate limit granted a render now.
local out = {}
local ms = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local ok = 0
  if redis.call('HGET', KEYS[i], 'loaded') == '1' and redis.call('HGET', KEYS[i], 'paused') ~= '1' then
    if ms <= 0 or redis.call('SET', KEYS[i + 1], '1', 'NX', 'PX', ms) then ok = 1 end
  end
  out[#out + 1] = ok
end
return out
