/**
 * The deliveries table as the queue on PostgreSQL ("Postgres only" mode). Claims use
 * FOR UPDATE SKIP LOCKED, so any number of worker processes claim disjoint rows without waiting
 * on each other. LISTEN/NOTIFY wakes workers the moment an emit commits; it only speeds things
 * up — the worker's periodic sweep finds everything anyway, so a lost notification costs at
 * most one sweep interval.
 */
import type pg from "pg";
import { loadPg } from "../store/db.js";
import { canonicalBody, inTransaction, WAKE_CHANNEL } from "../store/pg-engine.js";
import type { Priority } from "../store/schema.js";
import {
  type ClaimRow,
  claimedFromRow,
  type DeliveryQueue,
  depthByPriority,
  WAITING,
  WakeSignal,
} from "./queue.js";

const iso = (ms: number) => new Date(ms).toISOString();

/** Keeps this owner's leased rows hidden until `leaseUntil` (shared with the Redis queue). */
export async function extendPgLeases(
  pool: pg.Pool,
  ids: readonly string[],
  leaseUntil: number,
  owner: string,
): Promise<void> {
  if (ids.length === 0) return;
  await pool.query(
    `UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = $1
     WHERE id = ANY($2::text[]) AND lease_owner = $3 AND ${WAITING}`,
    [iso(leaseUntil), ids, owner],
  );
}

/** The backlog by priority, counted in PostgreSQL (exact, whatever carries the ids). */
export async function pgDepth(pool: pg.Pool): Promise<Record<Priority, number>> {
  const res = await pool.query<{ priority: number; n: number }>(
    `SELECT priority, count(*)::int AS n FROM webhook_deliveries WHERE ${WAITING} GROUP BY priority`,
  );
  return depthByPriority(res.rows);
}

export function createPgQueue(pool: pg.Pool, owner: string, opts: { listen: boolean }): DeliveryQueue {
  const wake = new WakeSignal();
  let listener: pg.Client | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const listen = async () => {
    if (closed) return;
    const opts = pool.options as pg.ClientConfig;
    const client = new (loadPg().Client)({ ...opts });
    client.on("error", () => {
      // The connection broke: drop it and listen again shortly. Sweeps cover the gap.
      client.end().catch(() => {});
      if (listener === client) listener = undefined;
      if (!closed) retryTimer = setTimeout(() => void listen().catch(() => {}), 1000).unref();
    });
    client.on("notification", (msg) => {
      if (msg.channel === WAKE_CHANNEL && msg.payload) wake.fire(msg.payload.split(","));
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_CHANNEL}`);
      listener = client;
    } catch {
      client.end().catch(() => {});
      if (!closed) retryTimer = setTimeout(() => void listen().catch(() => {}), 1000).unref();
    }
  };
  if (opts.listen) void listen();

  return {
    kind: "postgres",
    async enqueue(entries) {
      // The emit transaction already sent pg_notify; wake local workers without the round trip.
      if (entries.length > 0) wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    async readyWebhooks(now) {
      const res = await pool.query<{ id: string }>(
        `SELECT w.id FROM webhooks w WHERE EXISTS (SELECT 1 FROM webhook_deliveries d
           WHERE d.webhook_id = w.id AND d.${WAITING} AND d.next_retry_at <= $1)`,
        [iso(now)],
      );
      return res.rows.map((r) => r.id);
    },
    async claim(requests, now, leaseUntil) {
      const wanted = requests.filter((r) => r.max > 0 && r.limit > 0);
      if (wanted.length === 0) return [];
      // Per-webhook advisory locks (in a fixed order, so two claimers cannot deadlock) make
      // "count what is leased, take the difference" atomic across every worker process.
      wanted.sort((x, y) => (x.webhookId < y.webhookId ? -1 : 1));
      const res = await inTransaction(pool, async (c) => {
        await c.query("SELECT pg_advisory_xact_lock(hashtext('cw:' || w)) FROM unnest($1::text[]) AS w", [
          wanted.map((r) => r.webhookId),
        ]);
        return c.query<ClaimRow>(
          `WITH req AS (
             SELECT r.webhook_id, LEAST(r.n, GREATEST(r.lim - (
               SELECT count(*) FROM webhook_deliveries x
               WHERE x.webhook_id = r.webhook_id AND x.lease_owner IS NOT NULL AND x.lease_until > $5
                 AND x.${WAITING}), 0)) AS n
             FROM unnest($3::text[], $4::int[], $6::int[]) AS r(webhook_id, n, lim)),
           picked AS (
             SELECT d.id FROM req,
             LATERAL (SELECT id FROM webhook_deliveries
                      WHERE webhook_id = req.webhook_id AND ${WAITING} AND next_retry_at <= $5
                      ORDER BY priority, next_retry_at LIMIT req.n FOR UPDATE SKIP LOCKED) d)
           UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = $1, lease_owner = $2
           WHERE id IN (SELECT id FROM picked)
           RETURNING id, webhook_id, priority, event, payload::text AS payload, attempts`,
          [
            iso(leaseUntil),
            owner,
            wanted.map((r) => r.webhookId),
            wanted.map((r) => r.max),
            iso(now),
            wanted.map((r) => r.limit),
          ],
        );
      });
      // RETURNING does not keep the sub-select's order: restore priority, then age.
      res.rows.sort((x, y) => x.priority - y.priority || (x.id < y.id ? -1 : 1));
      return res.rows.map((r) => claimedFromRow(r, canonicalBody));
    },
    extend: (ids, leaseUntil) => extendPgLeases(pool, ids, leaseUntil, owner),
    async release(entries, dueAt) {
      if (entries.length === 0) return;
      await pool.query(
        `UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = NULL, lease_owner = NULL
         WHERE id = ANY($2::text[]) AND lease_owner = $3 AND ${WAITING}`,
        [iso(dueAt), entries.map((e) => e.id), owner],
      );
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    async settle() {},
    depth: () => pgDepth(pool),
    onWake: (l) => wake.on(l),
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      await listener?.end().catch(() => {});
    },
  };
}
