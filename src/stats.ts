/**
 * Per-webhook statistics and the retention purge: compositions of the store's statements, both
 * run rarely, off the delivery path.
 */
import type { DeliveryStatus } from "./models.js";
import type { Store } from "./store/index.js";

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
  const by_status = await store.deliveries.countByStatus(webhookId, since);
  const finished = by_status.success + by_status.failed + by_status.dead_letter;
  const d = await store.deliveries.durations(webhookId, since);
  return {
    total: by_status.pending + finished,
    by_status,
    success_rate: finished === 0 ? null : by_status.success / finished,
    duration_ms: {
      avg: d.n === 0 || d.avg === null ? null : Math.round(Number(d.avg) * 10) / 10,
      p50: d.p50 === null ? null : Number(d.p50),
      p95: d.p95 === null ? null : Number(d.p95),
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
  const total = { deliveries: 0, events: 0 };
  for (;;) {
    const n = await store.deliveries.purgeBefore(cutoff, batch);
    total.deliveries += n.deliveries;
    total.events += n.events;
    if (n.deliveries < batch && n.events < batch) break;
    if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  return total;
}
