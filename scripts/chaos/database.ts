/**
 * Why this exists: the checker's second witness. After healing, what the service's own database
 * says — every delivery's status, every event with its idempotency key, every webhook's final
 * settings — read directly (never
 * through the chaos proxy): from the SQLite file, or from the run's PostgreSQL schema. Also the
 * count of deliveries still waiting, which the drain loop polls.
 */
import Database from "better-sqlite3";
import pg from "pg";
import type { DatabaseView, DbDelivery, DbEvent, DbWebhook } from "./history.js";

export interface DbReader {
  /** Deliveries still to do (pending, or failed with a retry scheduled). */
  waiting(): Promise<number>;
  read(): Promise<DatabaseView>;
  close(): Promise<void>;
}

const WAITING = "status = 'pending' OR (status = 'failed' AND next_retry_at IS NOT NULL)";
const DELIVERIES =
  "SELECT id, webhook_id, event_id, status, attempts, next_retry_at, error_message FROM webhook_deliveries";
const EVENTS = "SELECT id, user_id, event, idempotency_key FROM webhook_events";
const WEBHOOKS = "SELECT id, active, events, url FROM webhooks";

interface WebhookRow {
  id: string;
  active: number | boolean;
  events: string | string[];
  url: string;
}

const toWebhook = (r: WebhookRow): DbWebhook => ({
  id: r.id,
  active: r.active === true || r.active === 1,
  events: Array.isArray(r.events) ? r.events : r.events.split(",").filter(Boolean),
  url: r.url,
});

interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string | null;
  status: string;
  attempts: number;
  next_retry_at: string | Date | null;
  error_message: string | null;
}
interface EventRow {
  id: string;
  user_id: string;
  event: string;
  idempotency_key: string | null;
}

const toDelivery = (r: DeliveryRow): DbDelivery => ({
  id: r.id,
  webhookId: r.webhook_id,
  eventId: r.event_id,
  status: r.status,
  attempts: Number(r.attempts),
  nextRetryAt:
    r.next_retry_at === null
      ? null
      : r.next_retry_at instanceof Date
        ? r.next_retry_at.toISOString()
        : r.next_retry_at,
  errorMessage: r.error_message,
});
const toEvent = (r: EventRow): DbEvent => ({
  id: r.id,
  userId: r.user_id,
  event: r.event,
  idempotencyKey: r.idempotency_key,
});

export function openDbReader(where: { sqlitePath?: string; pgUrl?: string }): DbReader {
  if (where.sqlitePath) {
    const db = new Database(where.sqlitePath, { fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    return {
      waiting: async () =>
        (db.prepare(`SELECT count(*) AS n FROM webhook_deliveries WHERE ${WAITING}`).get() as { n: number })
          .n,
      read: async () => ({
        deliveries: (db.prepare(DELIVERIES).all() as DeliveryRow[]).map(toDelivery),
        events: (db.prepare(EVENTS).all() as EventRow[]).map(toEvent),
        webhooks: (db.prepare(WEBHOOKS).all() as WebhookRow[]).map(toWebhook),
      }),
      close: async () => {
        db.close();
      },
    };
  }
  const pool = new pg.Pool({ connectionString: where.pgUrl, max: 2, connectionTimeoutMillis: 5000 });
  pool.on("error", () => {});
  return {
    async waiting() {
      const r = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM webhook_deliveries WHERE ${WAITING}`,
      );
      return Number(r.rows[0]!.n);
    },
    async read() {
      const [d, e, w] = await Promise.all([
        pool.query<DeliveryRow>(DELIVERIES),
        pool.query<EventRow>(EVENTS),
        pool.query<WebhookRow>(WEBHOOKS),
      ]);
      return {
        deliveries: d.rows.map(toDelivery),
        events: e.rows.map(toEvent),
        webhooks: w.rows.map(toWebhook),
      };
    },
    close: () => pool.end(),
  };
}
