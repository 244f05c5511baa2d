/**
 * The deliveries table as the queue on PostgreSQL ("Postgres only" mode). Claims use
 * FOR UPDATE SKIP LOCKED, so any number of worker processes claim disjoint rows without waiting
 * on each other (the SQL is the store's: store/postgres/queue.ts). LISTEN/NOTIFY wakes workers
 * the moment an emit commits; it only speeds things up — the worker's periodic sweep finds
 * everything anyway, so a lost notification costs at most one sweep interval.
 */
import type pg from "pg";
import { loadPg } from "../store/index.js";
import type { PostgresStore } from "../store/types.js";
import { type DeliveryQueue, WakeSignal } from "./queue.js";

const iso = (ms: number) => new Date(ms).toISOString();

export function createPgQueue(store: PostgresStore, owner: string, opts: { listen: boolean }): DeliveryQueue {
  const wake = new WakeSignal();
  const sql = store.queue;
  let listener: pg.Client | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const listen = async () => {
    if (closed) return;
    const client = new (loadPg().Client)({ ...(store.pool.options as pg.ClientConfig) });
    client.on("error", () => {
      // The connection broke: drop it and listen again shortly. Sweeps cover the gap.
      client.end().catch(() => {});
      if (listener === client) listener = undefined;
      if (!closed) retryTimer = setTimeout(() => void listen().catch(() => {}), 1000).unref();
    });
    client.on("notification", (msg) => {
      if (msg.channel === sql.wakeChannel && msg.payload) wake.fire(msg.payload.split(","));
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${sql.wakeChannel}`);
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
    readyWebhooks: (now) => sql.readyWebhooks(iso(now)),
    claim: (requests, now, leaseUntil) => sql.claim(requests, iso(now), iso(leaseUntil), owner),
    extend: (ids, leaseUntil) => sql.extendLeases(ids, iso(leaseUntil), owner),
    async release(entries, dueAt) {
      if (entries.length === 0) return;
      await sql.release(
        entries.map((e) => e.id),
        iso(dueAt),
        owner,
      );
      wake.fire([...new Set(entries.map((e) => e.webhookId))]);
    },
    async settle() {},
    depth: () => sql.depth(),
    onWake: (l) => wake.on(l),
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      await listener?.end().catch(() => {});
    },
  };
}
