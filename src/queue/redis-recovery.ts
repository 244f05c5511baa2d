/**
 * The recovery sweep of the Redis queue: whatever Redis lost, the rows still say. One process at
 * a time (a lock in Redis, renewed page by page) adds back every waiting row that Redis does not
 * hold:
 *
 * - all of them (keyset pages by id) when Redis lost its data — its epoch key is gone after a
 *   restart without persistence — or when some process could not enqueue (the dirty key);
 * - otherwise only the rows that fell due since the previous sweep, minus a grace period for
 *   enqueues still on their way, plus some slack for slow commits and clock skew. That finds a
 *   crash between commit and enqueue within one interval, and costs a query over seconds' worth
 *   of rows however large the backlog is.
 *
 * A row leased in the database is being delivered: it is not made due. After Redis lost its data
 * it becomes a lease again, so the per-webhook in-flight cap still counts it. (Only then: while
 * Redis holds its leases, a lease rebuilt from a row read a moment ago could outlive the delivery,
 * which settled in between, and block a slot until it expired.)
 */
import type { Redis } from "ioredis";
import type { PgQueueStatements, SweepRow } from "../store/types.js";
import type { RedisKeys } from "./redis-keys.js";
import { scripts } from "./redis-scripts.js";

export const iso = (ms: number) => new Date(ms).toISOString();

/** Rows due this recently may still be on their way to Redis: the sweep leaves them alone. */
const GRACE_MS = 2000;
/** Each windowed sweep also looks this far behind the previous one. */
const SLACK_MS = 30_000;
const PAGE = 1000;
/** The sweeper's lock; renewed by every page, so it only has to outlive one page. */
const LOCK_MS = 20_000;

export interface ReconcileReport {
  mode: "busy" | "full" | "window";
  scanned: number;
  added: number;
}

export interface SweepContext {
  redis: Redis;
  sql: PgQueueStatements;
  keys: RedisKeys;
  /** Throws when Redis is away, so a sweep stops at once instead of queueing commands. */
  live(): void;
  /** This process lost an enqueue (set) or a full sweep has covered it (cleared). */
  needsFull: boolean;
  /** The owners' heartbeat lifetime: the grace a restored lease's owner gets. */
  ownerTtlMs: number;
}

export async function sweep(ctx: SweepContext, now: number, token: string): Promise<ReconcileReport> {
  const { redis, sql, keys } = ctx;
  ctx.live();
  const begin = (await scripts.reconcileBegin.run(
    redis,
    [keys.ready],
    [keys.base, token, LOCK_MS, ctx.needsFull ? "1" : "0"],
  )) as string[];
  if (begin[0] === "busy") return { mode: "busy", scanned: 0, added: 0 };
  const full = begin[0] === "full";
  const lost = full && begin[1] === "1";
  if (full) ctx.needsFull = false;
  const upTo = now - GRACE_MS;
  const from = full ? "" : iso(Number(begin[1]) - SLACK_MS);
  const page = full
    ? (after: SweepRow | undefined) => sql.waitingPage(after?.id ?? "", PAGE)
    : (after: SweepRow | undefined) =>
        sql.dueWindowPage(from, iso(upTo), { due: after ? iso(after.due) : from, id: after?.id ?? "" }, PAGE);
  let ok = false;
  try {
    let scanned = 0;
    let added = 0;
    let last: SweepRow | undefined;
    for (;;) {
      const rows = await page(last);
      if (rows.length === 0) break;
      scanned += rows.length;
      ctx.live();
      const args: Array<string | number> = [keys.base, now, token, LOCK_MS, lost ? "1" : "0", ctx.ownerTtlMs];
      for (const r of rows) {
        args.push(r.webhook_id, r.id, r.priority, r.due, r.lease_owner ?? "", r.lease_until ?? 0);
      }
      added += Number(await scripts.reconcilePage.run(redis, [keys.ready], args));
      last = rows[rows.length - 1];
      if (rows.length < PAGE) break;
    }
    await purgeDeleted(ctx, now);
    ok = true;
    return { mode: full ? "full" : "window", scanned, added };
  } finally {
    // A full sweep that broke off must be redone, here (needsFull) and by whoever sweeps next.
    if (!ok && full) ctx.needsFull = true;
    const redo = ok || !full ? "" : lost ? "lost" : "dirty";
    await scripts.reconcileEnd
      .run(redis, [keys.ready], [keys.base, token, ok ? upTo : "", redo])
      .catch(() => {});
  }
}

/** Webhooks due for a minute that no longer exist: their rows went with them, so do their keys. */
async function purgeDeleted(ctx: SweepContext, now: number): Promise<void> {
  const { redis, sql, keys } = ctx;
  const stale = await redis.zrangebyscore(keys.ready, "-inf", now - 60_000, "LIMIT", 0, 500);
  if (stale.length === 0) return;
  const exists = new Set(await sql.existingWebhooks(stale));
  const gone = stale.filter((w) => !exists.has(w));
  if (gone.length > 0) await scripts.purge.run(redis, [keys.ready], [keys.base, ...gone]);
}
