"""The lock's Lua scripts. Each runs atomically in Redis and counts as one client command.

The lock is a hash: one field per owner (`<instance id>:<hold id>`, the instance being the
holding process's session, shared/session.py; a task's re-entries share its hold's id)
whose value is the re-entry count, plus the
field `#fence` with the acquisition's fencing token. Tokens come from a counter key that is
seeded from the Redis clock when it is missing, so a counter lost with a Redis restart or
an expiry still only moves forward.
"""

ACQUIRE = """
-- KEYS[1] lock hash, KEYS[2] fence counter; ARGV[1] lease ms, ARGV[2] owner, ARGV[3] fence ttl ms,
-- ARGV[4] an instance whose session is over, or an owner its process has forgotten, or '':
-- a lock held only by it is taken over.
-- Returns {1, token, 1 when taken over} or {0, pttl, the owner holding it}.
local taken = 0
if ARGV[4] ~= '' and redis.call('exists', KEYS[1]) == 1 then
  local prefix = ARGV[4] .. ':'
  taken = 1
  for _, holder in ipairs(redis.call('hkeys', KEYS[1])) do
    if holder ~= '#fence' and holder ~= ARGV[4] and string.sub(holder, 1, #prefix) ~= prefix then
      taken = 0
    end
  end
  if taken == 1 then
    redis.call('del', KEYS[1])
  end
end
if redis.call('exists', KEYS[1]) == 0 then
  if redis.call('exists', KEYS[2]) == 0 then
    local now = redis.call('time')
    redis.call('set', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
  end
  local token = redis.call('incr', KEYS[2])
  redis.call('pexpire', KEYS[2], ARGV[3])
  redis.call('hset', KEYS[1], ARGV[2], 1, '#fence', token)
  redis.call('pexpire', KEYS[1], ARGV[1])
  return {1, token, taken}
end
if redis.call('hexists', KEYS[1], ARGV[2]) == 1 then
  redis.call('hincrby', KEYS[1], ARGV[2], 1)
  redis.call('pexpire', KEYS[1], ARGV[1])
  return {1, tonumber(redis.call('hget', KEYS[1], '#fence')), 0}
end
local holder = ''
for _, field in ipairs(redis.call('hkeys', KEYS[1])) do
  if field ~= '#fence' then
    holder = field
  end
end
return {0, redis.call('pttl', KEYS[1]), holder}
"""

RELEASE = """
-- KEYS[1] lock hash, KEYS[2] channel; ARGV[1] lease ms, ARGV[2] owner
-- returns -1 not the owner, 0 still held (re-entered), 1 released
if redis.call('hexists', KEYS[1], ARGV[2]) == 0 then
  return -1
end
if redis.call('hincrby', KEYS[1], ARGV[2], -1) > 0 then
  redis.call('pexpire', KEYS[1], ARGV[1])
  return 0
end
redis.call('del', KEYS[1])
redis.call('publish', KEYS[2], 'unlocked')
return 1
"""

RENEW = """
-- KEYS[1] lock hash; ARGV[1] lease ms, ARGV[2] owner; 1 renewed, 0 the lock is not ours
if redis.call('hexists', KEYS[1], ARGV[2]) == 1 then
  redis.call('pexpire', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

FORCE_RELEASE = """
-- KEYS[1] lock hash, KEYS[2] channel
if redis.call('del', KEYS[1]) == 1 then
  redis.call('publish', KEYS[2], 'unlocked')
  return 1
end
return 0
"""

HAND_OVER = """
-- KEYS[1] lock hash, KEYS[2] fence counter; ARGV[1] lease ms, ARGV[2] owner, ARGV[3] next owner,
-- ARGV[4] fence ttl ms. Passes a lock held once by owner to next owner with a new token;
-- 0 when owner does not hold it (expired, taken away, or re-entered).
if tonumber(redis.call('hget', KEYS[1], ARGV[2])) ~= 1 then
  return 0
end
local token = redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[4])
redis.call('hdel', KEYS[1], ARGV[2])
redis.call('hset', KEYS[1], ARGV[3], 1, '#fence', token)
redis.call('pexpire', KEYS[1], ARGV[1])
return token
"""

DROP = """
-- KEYS[1] lock hash, KEYS[2] channel; ARGV[1] owner. The last release of a hold: its owner
-- leaves whatever its count (a count that drifted, a re-entry's release that missed this node,
-- cannot keep it). 1 released, -1 the owner does not hold it here.
if redis.call('hdel', KEYS[1], ARGV[1]) == 0 then
  return -1
end
for _, field in ipairs(redis.call('hkeys', KEYS[1])) do
  if field ~= '#fence' then
    return 1
  end
end
redis.call('del', KEYS[1])
redis.call('publish', KEYS[2], 'unlocked')
return 1
"""
