/**
 * Every Redis key and channel of the queue, named in this one place (BullMQ's habit). All of
 * them start with the hash tag `{prefix}`, so on Redis Cluster a deployment's keys share one slot
 * and each Lua script stays atomic. The scripts build per-webhook and per-owner key names from
 * the same suffixes (see `LUA_KEYS`), the way BullMQ's scripts build job keys from the prefix.
 *
 *   {p}:ready            zset  webhook id → earliest due time or lease expiry (ms)
 *   {p}:w:<id>:d0|d1|d2  zset  delivery id → due time (ms), one per priority (0 high … 2 low)
 *   {p}:w:<id>:lease     zset  delivery id → lease expiry (ms): the webhook's in-flight set
 *   {p}:w:<id>:owner     hash  delivery id → "<priority digit><owner>" of each lease
 *   {p}:held:<owner>     set   webhooks the owner has held leases on (to reap a dead owner)
 *   {p}:alive            hash  owner → heartbeat expiry (ms)
 *   {p}:epoch            string  present while Redis still holds what reconcile rebuilt
 *   {p}:dirty            string  "some enqueue was lost: rebuild everything"
 *   {p}:reconcile        string  the reconcile lock (one sweeper at a time across processes)
 *   {p}:watermark        string  due times up to this (ms) were checked by the windowed sweep
 *   {p}:wake             pub/sub channel: "<origin>|<webhook id>,<webhook id>…"
 */

export interface RedisKeys {
  /** "{p}:" — what the Lua scripts prepend to the suffixes below. */
  readonly base: string;
  readonly ready: string;
  readonly alive: string;
  readonly epoch: string;
  readonly dirty: string;
  readonly reconcile: string;
  readonly watermark: string;
  readonly wake: string;
  due(webhookId: string, priority: number): string;
  lease(webhookId: string): string;
  owner(webhookId: string): string;
  held(owner: string): string;
}

const PREFIX_SHAPE = /^[A-Za-z0-9_.:-]{1,64}$/;

export function redisKeys(prefix: string): RedisKeys {
  // Braces would end the hash tag early and split a deployment across slots.
  if (!PREFIX_SHAPE.test(prefix)) throw new Error(`invalid Redis key prefix "${prefix}"`);
  const base = `{${prefix}}:`;
  return {
    base,
    ready: `${base}ready`,
    alive: `${base}alive`,
    epoch: `${base}epoch`,
    dirty: `${base}dirty`,
    reconcile: `${base}reconcile`,
    watermark: `${base}watermark`,
    wake: `${base}wake`,
    due: (w, p) => `${base}w:${w}:d${p}`,
    lease: (w) => `${base}w:${w}:lease`,
    owner: (w) => `${base}w:${w}:owner`,
    held: (o) => `${base}held:${o}`,
  };
}

/** The same layout for the scripts: `B` is ARGV[1], the "{p}:" base. */
export const LUA_KEYS = `
local B = ARGV[1]
local READY, ALIVE = B .. 'ready', B .. 'alive'
local function kDue(w, p) return B .. 'w:' .. w .. ':d' .. p end
local function kLease(w) return B .. 'w:' .. w .. ':lease' end
local function kOwner(w) return B .. 'w:' .. w .. ':owner' end
local function kHeld(o) return B .. 'held:' .. o end
`;
