-- Take `cost` tokens from a venue account's shared bucket, refilled at `rate` per second up to `burst`.
-- KEYS[1]: the bucket hash (fields tokens, ts, blocked_until)
-- ARGV: rate, burst, cost
-- Returns: the seconds to wait before a token is free, as a string ("0": the tokens were taken)
-- "Now" is Redis' clock, so processes on any machine agree on it (scripts replicate by effects).
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
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
