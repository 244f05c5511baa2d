/**
 * The distributed queue: PostgreSQL is the truth, Redis carries delivery ids and due times.
 *
 * Why not BullMQ (the issue's default): our workers claim PER WEBHOOK ("up to n of webhook W,
 * and never more than `limit` of W in flight across every process"). BullMQ's open-source
 * edition has one pull order per queue and a concurrency/rate limit per queue or per worker;
 * per-group queues and per-group concurrency are BullMQ Pro features. Emulating groups with one
 * BullMQ queue per webhook costs a Worker (two connections, one blocking) per webhook per
 * process, and still leaves the global cap to a lock we would write ourselves. Measured here
 * (private redis-server, 2 shared cores): BullMQ 5 takes and completes 5.1k empty jobs/s
 * (concurrency 50) and holds ~780 bytes per waiting job; this queue enqueues ~200k ids/s, holds
 * ~130 bytes per waiting delivery, and claims + settles ~20k deliveries/s including the
 * PostgreSQL UPDATE that stamps each lease (bench/distributed.bench.ts, "stage alone").
 * So: a small design on ioredis with one Lua script per operation (redis-scripts.ts).
 *
 * Leases live in Redis AND are stamped on the row (lease_owner, next_retry_at = lease_until),
 * so an outcome from a claimer that lost its lease is refused by the database, and a Redis that
 * lost its data can rebuild the leases (and with them the in-flight cap) from the rows. Workers
 * heartbeat; one silent for `ownerTtlMs` (15 s) is reaped and its deliveries are due at once,
 * instead of when their leases (the request timeout + 60 s) would run out.
 *
 * Recovery (`reconcile`, redis-recovery.ts): whatever Redis lost, the rows still say; a sweep
 * piggybacked on the workers' `readyWebhooks` (and run at once when Redis comes back) re-queues it.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type { Redis as RedisClient } from "ioredis";
import { type Clock, systemClock } from "../clock.js";
import type { PostgresStore } from "../store/types.js";
import type { ClaimedDelivery, DeliveryQueue, QueueEntry } from "./queue.js";
import { WakeSignal } from "./queue.js";
import { type RedisKeys, redisKeys } from "./redis-keys.js";
import { iso, type ReconcileReport, type SweepContext, sweep } from "./redis-recovery.js";
import { grouped, scripts } from "./redis-scripts.js";

export type { ReconcileReport } from "./redis-recovery.js";

export interface RedisQueueOptions {
  /** redis:// or rediss:// */
  url: string;
  /** The store: leases are stamped on its rows, and the recovery sweep reads them. */
  store: PostgresStore;
  /** Identifies this process's leases. */
  owner: string;
  /** Every key lives under the hash tag `{prefix}`. Default "cw". */
  prefix?: string;
  /** This process delivers: it heartbeats, listens for wake-ups and runs the recovery sweep. */
  worker: boolean;
  clock?: Clock;
  log?: QueueLog;
  /** Recovery sweep interval (ms), piggybacked on `readyWebhooks`; 0 turns it off. Default 5000. */
  reconcileIntervalMs?: number;
  /** A worker silent this long is dead and its leases are handed out again. Default 15000. */
  ownerTtlMs?: number;
}

export interface QueueLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RedisDeliveryQueue extends DeliveryQueue {
  readonly kind: "redis";
  /** Throws when Redis does not answer (for /health). */
  ping(): Promise<void>;
  /** One recovery sweep (see the file comment); `busy` when another process is sweeping. */
  reconcile(now: number): Promise<ReconcileReport>;
  /** Marks this owner alive until now + ownerTtlMs (workers do this on a timer). */
  heartbeat(now: number): Promise<void>;
}

/** Redis is (still) unreachable: the call was refused at once instead of waiting for it. */
export class RedisUnavailableError extends Error {
  override name = "RedisUnavailableError";
  constructor() {
    super("Redis is unreachable");
  }
}

const MAX_UNSETTLED = 100_000;

export function createRedisQueue(opts: RedisQueueOptions): RedisDeliveryQueue {
  const { owner } = opts;
  const sql = opts.store.queue;
  const clock = opts.clock ?? systemClock;
  const keys: RedisKeys = redisKeys(opts.prefix ?? "cw");
  const interval = opts.reconcileIntervalMs ?? 5000;
  const ttl = opts.ownerTtlMs ?? 15_000;
  const origin = randomBytes(6).toString("hex");
  const wake = new WakeSignal();
  // Fail fast: a call made while Redis is away errors after one reconnect attempt instead of
  // queueing forever, so an emit is never held up by it (the row is committed; the sweep finds it).
  // Loaded here, not at the top: only the distributed mode pays for ioredis (~20 MB resident).
  const { Redis } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  const redis: RedisClient = new Redis(opts.url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    commandTimeout: 5000,
    retryStrategy: (times) => Math.min(100 * times, 1000),
  });
  /** Deliveries this process holds, for `extend` (which gets ids only). */
  const held = new Map<string, string>();
  /** Settles that Redis did not take; replayed before the next claim so a lease is never stale. */
  let unsettled: Array<{ entry: QueueEntry; nextDueAt: number | null }> = [];
  let everReady = false;
  let down = false;
  let lastSweep = Number.NEGATIVE_INFINITY;
  let sweeping: Promise<unknown> | undefined;
  let sweepAgain = false;
  let closed = false;
  let beat: unknown;

  // Before the first connection, calls wait for it (start-up); once Redis has failed us, they fail.
  const live = () => {
    if (closed || (redis.status !== "ready" && (everReady || down))) throw new RedisUnavailableError();
  };
  const ctx: SweepContext = { redis, sql, keys, live, needsFull: false, ownerTtlMs: ttl };

  const sweepSoon = (now: number) => {
    if (!opts.worker || interval <= 0 || closed) return;
    if (sweeping) {
      // A sweep that started before Redis came back may fail or miss what Redis lost: go again.
      sweepAgain = true;
      return;
    }
    lastSweep = now;
    sweeping = queue
      .reconcile(now)
      .then((r) => {
        if (r.added > 0) opts.log?.info({ ...r }, "recovery sweep re-queued deliveries Redis did not hold");
      })
      .catch((err: unknown) => {
        lastSweep = Number.NEGATIVE_INFINITY;
        opts.log?.warn({ err: String(err) }, "recovery sweep failed");
      })
      .finally(() => {
        sweeping = undefined;
        if (sweepAgain) {
          sweepAgain = false;
          sweepSoon(clock.now());
        }
      });
  };

  // Without a listener ioredis prints every failed reconnect; the 'close' below says it once.
  redis.on("error", () => {
    if (!everReady && !down) opts.log?.warn({}, "Redis is unreachable; deliveries wait in the database");
    if (redis.status !== "ready") down = true;
  });
  redis.on("close", () => {
    if (!everReady || down || closed) return;
    down = true;
    opts.log?.warn({}, "Redis connection lost; deliveries wait in the database until it is back");
  });
  redis.on("ready", () => {
    const wasDown = down;
    everReady = true;
    down = false;
    if (!wasDown) return;
    opts.log?.info({}, "Redis is reachable");
    if (ctx.needsFull) {
      // Ask whoever sweeps next for a full rebuild: this process lost enqueues while away.
      redis.set(keys.dirty, "1").then(
        () => {
          ctx.needsFull = false;
        },
        () => {},
      );
    }
    sweepSoon(clock.now());
  });

  let sub: RedisClient | undefined;
  if (opts.worker) {
    // Wake-ups from other processes' emits; like NOTIFY, they only speed things up.
    sub = redis.duplicate();
    sub.on("error", () => {});
    sub.on("message", (_channel: string, message: string) => {
      const bar = message.indexOf("|");
      if (bar > 0 && message.slice(0, bar) !== origin) wake.fire(message.slice(bar + 1).split(","));
    });
    // On every (re)connect: a SUBSCRIBE that failed while Redis was away would not be redone
    // by ioredis, and subscribing twice to one channel is harmless.
    const listener = sub;
    listener.on("ready", () => {
      listener.subscribe(keys.wake).catch(() => {});
    });
  }

  const handBack = async (items: Array<{ id: string; webhookId: string; score: number }>) => {
    for (const g of grouped(
      items,
      (t) => t.webhookId,
      (t) => [t.id, t.score],
    )) {
      await scripts.handBack.run(redis, [keys.ready], [keys.base, owner, ...g.args]);
    }
  };

  const flushUnsettled = async () => {
    if (unsettled.length === 0) return;
    const batch = unsettled;
    unsettled = [];
    try {
      await handBack(batch.map((s) => ({ ...s.entry, score: s.nextDueAt ?? -1 })));
    } catch (err) {
      unsettled = batch.concat(unsettled).slice(0, MAX_UNSETTLED);
      throw err;
    }
  };

  const queue: RedisDeliveryQueue = {
    kind: "redis",

    async enqueue(entries, dueAt) {
      if (entries.length === 0) return;
      try {
        live();
        for (const g of grouped(
          entries,
          (e) => e.webhookId,
          (e) => [e.id, e.priority],
        )) {
          await scripts.enqueue.run(redis, [keys.ready], [keys.base, dueAt, keys.wake, origin, ...g.args]);
        }
      } catch (err) {
        // The rows are committed, so the emit stands; the sweep re-queues them once Redis answers.
        if (!ctx.needsFull)
          opts.log?.warn({ err: String(err) }, "enqueue to Redis failed; recovery will re-queue");
        ctx.needsFull = true;
      }
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },

    async readyWebhooks(now) {
      live();
      if (now - lastSweep >= interval) sweepSoon(now);
      const ids = await scripts.ready.run(redis, [keys.ready], [keys.base, now, 10_000]);
      return ids as string[];
    },

    async claim(requests, now, leaseUntil) {
      const wanted = requests.filter((r) => r.max > 0 && r.limit > 0);
      if (wanted.length === 0) return [];
      live();
      await flushUnsettled();
      const args: Array<string | number> = [keys.base, now, leaseUntil, owner];
      for (const r of wanted) args.push(r.webhookId, r.max, r.limit);
      const pairs = (await scripts.claim.run(redis, [keys.ready], args)) as string[];
      if (pairs.length === 0) return [];
      const order = new Map<string, number>();
      const hookOf = new Map<string, string>();
      for (let i = 0; i < pairs.length; i += 2) {
        order.set(pairs[i]!, i);
        hookOf.set(pairs[i]!, pairs[i + 1]!);
      }
      const ids = [...order.keys()];
      let rows: ClaimedDelivery[];
      try {
        rows = await sql.stampLeases(ids, iso(now), iso(leaseUntil), owner);
      } catch (err) {
        // The database did not take the leases: give the deliveries straight back.
        await handBack(ids.map((id) => ({ id, webhookId: hookOf.get(id)!, score: now }))).catch(() => {});
        throw err;
      }
      if (rows.length < ids.length) {
        // Finished elsewhere (forget them), or scheduled later than Redis thought (requeue then).
        // Best effort: if this fails, the leases run out and the next claim decides again.
        const got = new Set(rows.map((r) => r.id));
        const missing = ids.filter((id) => !got.has(id));
        await sql
          .dueTimes(missing)
          .then((later) => {
            const due = new Map(later.map((r) => [r.id, r.due]));
            return handBack(
              missing.map((id) => ({ id, webhookId: hookOf.get(id)!, score: due.get(id) ?? -1 })),
            );
          })
          .catch(() => {});
      }
      rows.sort((x, y) => order.get(x.id)! - order.get(y.id)!);
      for (const r of rows) held.set(r.id, r.webhookId);
      return rows;
    },

    async extend(ids, leaseUntil) {
      const mine = ids.filter((id) => held.has(id));
      if (mine.length === 0) return;
      await sql.extendLeases(mine, iso(leaseUntil), owner);
      live();
      for (const g of grouped(
        mine,
        (id) => held.get(id)!,
        (id) => [id],
      )) {
        await scripts.extend.run(redis, [keys.ready], [keys.base, owner, leaseUntil, ...g.args]);
      }
    },

    async release(entries, dueAt) {
      if (entries.length === 0) return;
      for (const e of entries) held.delete(e.id);
      // The row first: once Redis hands the delivery out again, the row must already be free.
      await sql.release(
        entries.map((e) => e.id),
        iso(dueAt),
        owner,
      );
      live();
      await handBack(entries.map((e) => ({ id: e.id, webhookId: e.webhookId, score: dueAt })));
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },

    async settle(entries) {
      if (entries.length === 0) return;
      for (const s of entries) held.delete(s.entry.id);
      unsettled = unsettled.concat(entries).slice(0, MAX_UNSETTLED);
      live();
      await flushUnsettled();
    },

    // Counted in the database: exact, and still answered while Redis is away.
    depth: () => sql.depth(),

    onWake: (listener) => wake.on(listener),

    async ping() {
      live();
      await redis.ping();
    },

    async heartbeat(now) {
      live();
      await redis.hset(keys.alive, owner, now + ttl);
    },

    reconcile: (now) => sweep(ctx, now, randomBytes(8).toString("hex")),

    async close() {
      if (closed) return;
      if (opts.worker && redis.status === "ready") {
        // Hand back anything still leased at once, rather than when the heartbeat runs out.
        await scripts.retire.run(redis, [keys.ready], [keys.base, owner, clock.now()]).catch(() => {});
      }
      closed = true;
      clock.clearTimeout(beat);
      await sweeping;
      sub?.disconnect();
      if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
  if (opts.worker) {
    const tick = () => {
      if (closed) return;
      queue.heartbeat(clock.now()).catch(() => {});
      beat = clock.setTimeout(tick, Math.max(100, Math.floor(ttl / 3)));
    };
    tick();
  }
  return queue;
}
