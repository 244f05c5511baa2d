/**
 * The Lua scripts of the Redis queue. Each operation that touches more than one key is one
 * script, so Redis runs it atomically: that is what makes "count the webhook's leases, hand out
 * only the difference" hold across any number of worker processes. Key layout: redis-keys.ts.
 *
 * A lease is a member of the webhook's lease zset (score = expiry) plus an entry in its owner
 * hash ("<priority digit><owner>"); only the owner may extend, settle or release it. A lease
 * comes back as due when it expires (checked by every claim of that webhook) or when its owner
 * stops heartbeating (checked by every `ready` call, which reaps the dead owner at once).
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { LUA_KEYS } from "./redis-keys.js";

const HELPERS = `${LUA_KEYS}
-- The webhook's place in READY: its earliest due delivery or lease expiry; gone when it has none.
local function refresh(w)
  local best = nil
  for _, k in ipairs({kDue(w, 0), kDue(w, 1), kDue(w, 2), kLease(w)}) do
    local r = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if r[2] then
      local s = tonumber(r[2])
      if best == nil or s < best then best = s end
    end
  end
  if best then redis.call('ZADD', READY, best, w) else redis.call('ZREM', READY, w) end
end

-- Ends the lease on id if \`o\` holds it (any holder when o is nil); returns its priority digit.
local function unlease(w, id, o)
  local v = redis.call('HGET', kOwner(w), id)
  if not v or (o and string.sub(v, 2) ~= o) then return nil end
  redis.call('ZREM', kLease(w), id)
  redis.call('HDEL', kOwner(w), id)
  return string.sub(v, 1, 1)
end

-- Everything a dead (or retiring) owner holds is due again now.
local function reap(o, now)
  local hk = kHeld(o)
  for _, w in ipairs(redis.call('SMEMBERS', hk)) do
    for _, id in ipairs(redis.call('ZRANGE', kLease(w), 0, -1)) do
      local p = unlease(w, id, o)
      if p then redis.call('ZADD', kDue(w, p), now, id) end
    end
    refresh(w)
  end
  redis.call('DEL', hk)
  redis.call('HDEL', ALIVE, o)
end
`;

/** ARGV: base, dueAt, channel ('' = none), origin, then per webhook: id, n, n × (delivery, priority). */
const ENQUEUE = `${HELPERS}
local due = tonumber(ARGV[2])
local i, woken = 5, {}
while i <= #ARGV do
  local w, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local lk, best = kLease(w), nil
  for _ = 1, n do
    local id, p = ARGV[i], ARGV[i + 1]
    i = i + 2
    -- A delivery in flight stays leased: its claimer settles it.
    if not redis.call('ZSCORE', lk, id) then
      redis.call('ZADD', kDue(w, p), 'LT', due, id)
      best = due
    end
  end
  if best then
    redis.call('ZADD', READY, 'LT', best, w)
    woken[#woken + 1] = w
  end
end
if ARGV[3] ~= '' and #woken > 0 then
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. '|' .. table.concat(woken, ','))
end
return woken
`;

/** ARGV: base, now, limit. Reaps owners whose heartbeat ran out, then lists webhooks with work due. */
const READY_SCRIPT = `${HELPERS}
local now = tonumber(ARGV[2])
local alive = redis.call('HGETALL', ALIVE)
for j = 1, #alive, 2 do
  if tonumber(alive[j + 1]) < now then reap(alive[j], now) end
end
return redis.call('ZRANGEBYSCORE', READY, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
`;

/**
 * ARGV: base, now, leaseUntil, owner, then per webhook: id, max, limit.
 * Returns delivery id, webhook id pairs: highest priority first, then oldest due, per webhook.
 */
const CLAIM = `${HELPERS}
local now, untilMs, o = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out = {}
for i = 5, #ARGV, 3 do
  local w, max, limit = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local lk, ok = kLease(w), kOwner(w)
  -- Leases that ran out (the claimer died or stalled) are due again from their expiry.
  local expired = redis.call('ZRANGEBYSCORE', lk, '-inf', now, 'WITHSCORES')
  for j = 1, #expired, 2 do
    local id = expired[j]
    local v = redis.call('HGET', ok, id)
    redis.call('ZREM', lk, id)
    redis.call('HDEL', ok, id)
    redis.call('ZADD', kDue(w, v and string.sub(v, 1, 1) or '1'), expired[j + 1], id)
  end
  -- The cap is global: every claimer's leases on this webhook count.
  local take = math.min(max, limit - redis.call('ZCARD', lk), 2000)
  local got = 0
  for p = 0, 2 do
    if take <= 0 then break end
    local dk = kDue(w, p)
    local ids = redis.call('ZRANGEBYSCORE', dk, '-inf', now, 'LIMIT', 0, take)
    if #ids > 0 then
      local za, hs = {}, {}
      for _, id in ipairs(ids) do
        za[#za + 1] = untilMs
        za[#za + 1] = id
        hs[#hs + 1] = id
        hs[#hs + 1] = p .. o
        out[#out + 1] = id
        out[#out + 1] = w
      end
      redis.call('ZREM', dk, unpack(ids))
      redis.call('ZADD', lk, unpack(za))
      redis.call('HSET', ok, unpack(hs))
      take = take - #ids
      got = got + #ids
    end
  end
  if got > 0 then redis.call('SADD', kHeld(o), w) end
  if got > 0 or #expired > 0 then refresh(w) end
end
return out
`;

/**
 * Settle, release, drop: ends the owner's leases and makes each delivery due at its score, or
 * forgets it when the score is negative. Leases held by someone else are left alone.
 * ARGV: base, owner, then per webhook: id, n, n × (delivery, score).
 */
const HAND_BACK = `${HELPERS}
local o, i = ARGV[2], 3
while i <= #ARGV do
  local w, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local changed = false
  for _ = 1, n do
    local id, due = ARGV[i], tonumber(ARGV[i + 1])
    i = i + 2
    local p = unlease(w, id, o)
    if p then
      changed = true
      if due >= 0 then redis.call('ZADD', kDue(w, p), due, id) end
    end
  end
  if changed then refresh(w) end
end
return 1
`;

/** ARGV: base, owner, leaseUntil, then per webhook: id, n, n × delivery. */
const EXTEND = `${HELPERS}
local o, untilMs, i = ARGV[2], tonumber(ARGV[3]), 4
while i <= #ARGV do
  local w, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local ok = kOwner(w)
  for _ = 1, n do
    local v = redis.call('HGET', ok, ARGV[i])
    if v and string.sub(v, 2) == o then redis.call('ZADD', kLease(w), 'XX', untilMs, ARGV[i]) end
    i = i + 1
  end
  refresh(w)
end
return 1
`;

/** ARGV: base, owner, now. A closing worker gives back whatever it still holds, at once. */
const RETIRE = `${HELPERS}
reap(ARGV[2], tonumber(ARGV[3]))
return 1
`;

/**
 * ARGV: base, token, lockMs, forceFull. Returns {'busy'}, {'full', lost} or {'window', watermark}.
 * A missing epoch means Redis lost its data (a restart without persistence, a flush): rebuild
 * everything from the database, leases included (`lost` = '1'). A dirty key (some process could
 * not enqueue) asks for a full sweep too, but Redis still holds its leases then.
 */
const RECONCILE_BEGIN = `${LUA_KEYS}
local E, D, L, M = B .. 'epoch', B .. 'dirty', B .. 'reconcile', B .. 'watermark'
if not redis.call('SET', L, ARGV[2], 'NX', 'PX', tonumber(ARGV[3])) then return {'busy'} end
local mark = redis.call('GET', M)
local lost = redis.call('EXISTS', E) == 0
if lost or ARGV[4] == '1' or not mark or redis.call('EXISTS', D) == 1 then
  redis.call('SET', E, ARGV[2])
  redis.call('DEL', D)
  return {'full', lost and '1' or '0'}
end
return {'window', mark}
`;

/**
 * ARGV: base, now, token, lockMs, restoreLeases, ownerTtlMs, then per row: webhook, delivery,
 * priority, due, lease owner ('' none), lease expiry. Adds what Redis is missing. A row leased in
 * the database is left alone (its claimer holds it) unless Redis lost its data: then it becomes a
 * lease again, so the in-flight cap still counts it, and an owner Redis no longer knows gets one
 * heartbeat's grace (if it died meanwhile, it is reaped then, not when the lease runs out). Any
 * other row becomes due. Renews the sweeper's lock, so a short lock covers a long sweep.
 * Returns how many it added.
 */
const RECONCILE_PAGE = `${HELPERS}
local now = tonumber(ARGV[2])
local L = B .. 'reconcile'
if redis.call('GET', L) == ARGV[3] then redis.call('PEXPIRE', L, tonumber(ARGV[4])) end
local restore, ttl = ARGV[5] == '1', tonumber(ARGV[6])
local added, touched = 0, {}
for i = 7, #ARGV, 6 do
  local w, id, p, due, o, lu = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4], tonumber(ARGV[i + 5])
  local lk = kLease(w)
  if not redis.call('ZSCORE', lk, id) then
    if o ~= '' and lu > now then
      if restore then
        redis.call('ZADD', lk, lu, id)
        redis.call('HSET', kOwner(w), id, p .. o)
        redis.call('SADD', kHeld(o), w)
        redis.call('HSETNX', ALIVE, o, now + ttl)
        added = added + 1
        touched[w] = true
      end
    elseif not redis.call('ZSCORE', kDue(w, p), id) then
      redis.call('ZADD', kDue(w, p), due, id)
      added = added + 1
      touched[w] = true
    end
  end
end
for w in pairs(touched) do refresh(w) end
return added
`;

/**
 * ARGV: base, token, watermark ('' = failed), redo ('dirty': a full sweep broke off; 'lost': a
 * rebuild after data loss broke off, so the next one must restore leases too).
 */
const RECONCILE_END = `${LUA_KEYS}
if ARGV[3] ~= '' then
  local cur = tonumber(redis.call('GET', B .. 'watermark') or '0')
  if tonumber(ARGV[3]) > cur then redis.call('SET', B .. 'watermark', ARGV[3]) end
end
if ARGV[4] == 'dirty' then redis.call('SET', B .. 'dirty', '1') end
if ARGV[4] == 'lost' then redis.call('DEL', B .. 'epoch') end
if redis.call('GET', B .. 'reconcile') == ARGV[2] then redis.call('DEL', B .. 'reconcile') end
return 1
`;

/** ARGV: base, webhook ids. Forgets webhooks that no longer exist (their rows went with them). */
const PURGE = `${LUA_KEYS}
for i = 2, #ARGV do
  local w = ARGV[i]
  redis.call('DEL', kDue(w, 0), kDue(w, 1), kDue(w, 2), kLease(w), kOwner(w))
  redis.call('ZREM', READY, w)
end
return 1
`;

/** Items per script call: the arguments are spread into one JS call, which has a size limit. */
const CHUNK = 4096;

/**
 * The argument layout the scripts read — per webhook: id, n, then n × `per(item)` — in calls of
 * at most CHUNK items (an emitBatch of 1000 events to 50 webhooks is 50,000 deliveries).
 */
export function grouped<T>(
  items: readonly T[],
  hook: (t: T) => string,
  per: (t: T) => Array<string | number>,
): Array<{ args: Array<string | number> }> {
  const calls: Array<{ args: Array<string | number> }> = [];
  for (let i = 0; i < items.length; i += CHUNK) {
    const by = new Map<string, T[]>();
    for (const t of items.slice(i, i + CHUNK)) {
      const list = by.get(hook(t));
      if (list) list.push(t);
      else by.set(hook(t), [t]);
    }
    const args: Array<string | number> = [];
    for (const [w, list] of by) {
      args.push(w, list.length);
      for (const t of list) args.push(...per(t));
    }
    calls.push({ args });
  }
  return calls;
}

/** EVALSHA, falling back to EVAL when the server forgot the script (it restarted). */
export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  async run(redis: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

export const scripts = {
  enqueue: new LuaScript(ENQUEUE),
  ready: new LuaScript(READY_SCRIPT),
  claim: new LuaScript(CLAIM),
  handBack: new LuaScript(HAND_BACK),
  extend: new LuaScript(EXTEND),
  retire: new LuaScript(RETIRE),
  reconcileBegin: new LuaScript(RECONCILE_BEGIN),
  reconcilePage: new LuaScript(RECONCILE_PAGE),
  reconcileEnd: new LuaScript(RECONCILE_END),
  purge: new LuaScript(PURGE),
} as const;
