-- Take `cost` tokens from a venue account's shared bucket, refilled at `rate` per second up to `burst`.
-- KEYS[1]: the bucket hash (fields tokens, ts, blocked_until)
-- ARGV: rate, burst, now (Redis TIME, seconds), cost
-- Returns: the seconds to wait before a token is free, as a string ("0": the tokens were taken)
local rate, burst, now, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0')
if blocked > now then return tostring(blocked - now) end
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or tostring(burst))
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or tostring(now))
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
