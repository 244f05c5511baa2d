/**
 * The statements of both PostgreSQL queues: the Postgres-only queue claims with FOR UPDATE SKIP
 * LOCKED under per-webhook advisory locks; the Redis queue stamps the leases Redis handed out on
 * the rows (so a claimer that lost its lease is refused by the database) and rebuilds Redis from
 * the rows in its recovery sweep. Either way a lease is `lease_owner` plus `next_retry_at =
 * lease_until`: a row whose claimer died is simply due again when the lease runs out.
 */
import type pg from "pg";
import { BodyCache, type ClaimRow, depthByPriority, toClaimed, WAITING } from "../common.js";
import type { PgQueueStatements, SweepRow } from "../types.js";
import { canonicalBody } from "./body.js";
import { inTransaction, WAKE_CHANNEL } from "./engine.js";

/** A timestamptz column as epoch milliseconds. */
const epochMs = (col: string) => `round(extract(epoch from ${col}) * 1000)::float8`;
/**
 * Claimed rows come out of an UPDATE … RETURNING named `claimed`; each is returned with the
 * payload its event row holds (stored once per event, CONTRACT §2).
 */
const RETURNING = "RETURNING id, webhook_id, priority, event, event_id, payload, attempts";
const CLAIMED = `SELECT c.id, c.webhook_id, c.priority, c.event, c.event_id,
  COALESCE(c.payload, e.payload)::text AS payload, c.attempts
  FROM claimed c LEFT JOIN webhook_events e ON e.id = c.event_id`;
const SWEEP_COLS = `id, webhook_id, priority, ${epochMs("next_retry_at")} AS due, lease_owner, ${epochMs("lease_until")} AS lease_until`;

export function pgQueueStatements(pool: pg.Pool): PgQueueStatements {
  const bodies = new BodyCache(canonicalBody);
  const claimed = (rows: ClaimRow[]) => rows.map((r) => toClaimed(r, bodies));
  return {
    wakeChannel: WAKE_CHANNEL,

    async readyWebhooks(now) {
      const res = await pool.query<{ id: string }>(
        `SELECT w.id FROM webhooks w WHERE EXISTS (SELECT 1 FROM webhook_deliveries d
           WHERE d.webhook_id = w.id AND d.${WAITING} AND d.next_retry_at <= $1)`,
        [now],
      );
      return res.rows.map((r) => r.id);
    },

    async claim(requests, now, leaseUntil, owner) {
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
                      ORDER BY priority, next_retry_at LIMIT req.n FOR UPDATE SKIP LOCKED) d),
           claimed AS (
             UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = $1, lease_owner = $2
             WHERE id IN (SELECT id FROM picked)
             ${RETURNING})
           ${CLAIMED}`,
          [
            leaseUntil,
            owner,
            wanted.map((r) => r.webhookId),
            wanted.map((r) => r.max),
            now,
            wanted.map((r) => r.limit),
          ],
        );
      });
      // The result does not keep the sub-select's order: restore priority, then age.
      res.rows.sort((x, y) => x.priority - y.priority || (x.id < y.id ? -1 : 1));
      return claimed(res.rows);
    },

    async stampLeases(ids, now, leaseUntil, owner) {
      const res = await pool.query<ClaimRow>(
        `WITH claimed AS (
           UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = $1, lease_owner = $2
           WHERE id = ANY($3::text[]) AND ${WAITING} AND (next_retry_at <= $4 OR lease_owner IS NOT NULL)
           ${RETURNING})
         ${CLAIMED}`,
        [leaseUntil, owner, ids, now],
      );
      return claimed(res.rows);
    },

    async dueTimes(ids) {
      const res = await pool.query<{ id: string; due: number }>(
        `SELECT id, ${epochMs("next_retry_at")} AS due FROM webhook_deliveries WHERE id = ANY($1::text[]) AND ${WAITING}`,
        [ids],
      );
      return res.rows;
    },

    async extendLeases(ids, leaseUntil, owner) {
      if (ids.length === 0) return;
      await pool.query(
        `UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = $1
         WHERE id = ANY($2::text[]) AND lease_owner = $3 AND ${WAITING}`,
        [leaseUntil, ids, owner],
      );
    },

    async release(ids, dueAt, owner) {
      if (ids.length === 0) return;
      await pool.query(
        `UPDATE webhook_deliveries SET next_retry_at = $1, lease_until = NULL, lease_owner = NULL
         WHERE id = ANY($2::text[]) AND lease_owner = $3 AND ${WAITING}`,
        [dueAt, ids, owner],
      );
    },

    async depth() {
      const res = await pool.query<{ priority: number; n: number }>(
        `SELECT priority, count(*)::int AS n FROM webhook_deliveries WHERE ${WAITING} GROUP BY priority`,
      );
      return depthByPriority(res.rows);
    },

    async waitingPage(afterId, limit) {
      const res = await pool.query<SweepRow>(
        `SELECT ${SWEEP_COLS} FROM webhook_deliveries WHERE ${WAITING} AND id > $1 ORDER BY id LIMIT $2`,
        [afterId, limit],
      );
      return res.rows;
    },

    async dueWindowPage(from, upTo, after, limit) {
      const res = await pool.query<SweepRow>(
        `SELECT ${SWEEP_COLS} FROM webhook_deliveries
         WHERE ${WAITING} AND next_retry_at > $1 AND next_retry_at <= $2 AND (next_retry_at, id) > ($3::timestamptz, $4)
         ORDER BY next_retry_at, id LIMIT $5`,
        [from, upTo, after.due, after.id, limit],
      );
      return res.rows;
    },

    async existingWebhooks(ids) {
      const res = await pool.query<{ id: string }>("SELECT id FROM webhooks WHERE id = ANY($1::text[])", [
        ids,
      ]);
      return res.rows.map((r) => r.id);
    },
  };
}
