/**
 * Per-webhook statistics and the retention purge. Plain SQL through Kysely: both run rarely,
 * off the delivery path.
 */
import type { Store } from "./store/index.js";
import type { DeliveryStatus } from "./store/schema.js";

export interface WindowStats {
  total: number;
  by_status: Record<DeliveryStatus, number>;
  /** Successful share of finished deliveries (success, failed, dead_letter), 0..1; null when none. */
  success_rate: number | null;
  /** Attempt durations in the window, milliseconds. */
  duration_ms: { avg: number | null; p50: number | null; p95: number | null };
}

export interface StatsView {
  webhook_id: string;
  all_time: WindowStats;
  last_24h: WindowStats;
  last_7d: WindowStats;
}

async function windowStats(store: Store, webhookId: string, since: string | null): Promise<WindowStats> {
  let counts = store.db
    .selectFrom("webhook_deliveries")
    .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
    .where("webhook_id", "=", webhookId)
    .groupBy("status");
  if (since) counts = counts.where("created_at", ">=", since);
  const by_status: Record<DeliveryStatus, number> = { pending: 0, success: 0, failed: 0, dead_letter: 0 };
  for (const r of await counts.execute()) by_status[r.status] = Number(r.n);
  const finished = by_status.success + by_status.failed + by_status.dead_letter;

  let durations = store.db.selectFrom("webhook_delivery_attempts").where("webhook_id", "=", webhookId);
  if (since) durations = durations.where("attempted_at", ">=", since);
  const agg = await durations
    .select([(eb) => eb.fn.countAll<number>().as("n"), (eb) => eb.fn.avg<number>("duration_ms").as("avg")])
    .executeTakeFirstOrThrow();
  const n = Number(agg.n);
  const pct = async (p: number): Promise<number | null> => {
    if (n === 0) return null;
    const row = await durations
      .select("duration_ms")
      .orderBy("duration_ms")
      .limit(1)
      .offset(Math.min(n - 1, Math.floor(p * n)))
      .executeTakeFirst();
    return row ? Number(row.duration_ms) : null;
  };
  return {
    total: by_status.pending + finished,
    by_status,
    success_rate: finished === 0 ? null : by_status.success / finished,
    duration_ms: {
      avg: n === 0 ? null : Math.round(Number(agg.avg) * 10) / 10,
      p50: await pct(0.5),
      p95: await pct(0.95),
    },
  };
}

export async function webhookStats(store: Store, webhookId: string, now: number): Promise<StatsView> {
  return {
    webhook_id: webhookId,
    all_time: await windowStats(store, webhookId, null),
    last_24h: await windowStats(store, webhookId, new Date(now - 86_400_000).toISOString()),
    last_7d: await windowStats(store, webhookId, new Date(now - 7 * 86_400_000).toISOString()),
  };
}

/**
 * Deletes finished deliveries (and their attempts) and events older than the retention period,
 * `batch` rows per statement so that no single write holds the database for long. Work still
 * to do is never purged, however old.
 */
export async function purgeExpired(
  store: Store,
  opts: { now: number; retentionDays: number; batch?: number; pauseMs?: number },
): Promise<{ deliveries: number; events: number }> {
  const cutoff = new Date(opts.now - opts.retentionDays * 86_400_000).toISOString();
  const batch = opts.batch ?? 1000;
  let deliveries = 0;
  let events = 0;
  for (;;) {
    const res = await store.db
      .deleteFrom("webhook_deliveries")
      .where(
        "id",
        "in",
        store.db
          .selectFrom("webhook_deliveries")
          .select("id")
          .where("created_at", "<", cutoff)
          .where((eb) =>
            eb.or([
              eb("status", "in", ["success", "dead_letter"]),
              eb("status", "=", "failed").and("next_retry_at", "is", null),
            ]),
          )
          .limit(batch),
      )
      .executeTakeFirst();
    const n = Number(res.numDeletedRows);
    deliveries += n;
    if (n < batch) break;
    if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  for (;;) {
    const res = await store.db
      .deleteFrom("webhook_events")
      .where(
        "id",
        "in",
        store.db.selectFrom("webhook_events").select("id").where("created_at", "<", cutoff).limit(batch),
      )
      .executeTakeFirst();
    const n = Number(res.numDeletedRows);
    events += n;
    if (n < batch) break;
  }
  return { deliveries, events };
}
