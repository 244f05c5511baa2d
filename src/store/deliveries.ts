import type { Selectable, Updateable } from "kysely";
import type { Store } from "./db.js";
import type { AttemptsTable, DeliveriesTable, DeliveryStatus } from "./schema.js";

export interface DeliveryRecord {
  id: string;
  webhookId: string;
  eventId: string | null;
  event: string;
  payload: string;
  status: DeliveryStatus;
  priority: number;
  attempts: number;
  nextRetryAt: string | null;
  responseCode: number | null;
  responseBody: string | null;
  durationMs: number;
  createdAt: string;
  completedAt: string | null;
  errorMessage: string | null;
}

export interface NewDelivery {
  id: string;
  webhookId: string;
  eventId: string | null;
  event: string;
  payload: string;
  priority: number;
  createdAt: string;
  nextRetryAt: string;
}

export interface AttemptRecord {
  deliveryId: string;
  attempt: number;
  webhookId: string;
  attemptedAt: string;
  responseCode: number | null;
  durationMs: number;
  errorType: string | null;
  errorMessage: string | null;
}

export function toDelivery(row: Selectable<DeliveriesTable>): DeliveryRecord {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    eventId: row.event_id,
    event: row.event,
    payload: row.payload,
    status: row.status,
    priority: row.priority,
    attempts: row.attempts,
    nextRetryAt: row.next_retry_at,
    responseCode: row.response_code,
    responseBody: row.response_body,
    durationMs: row.duration_ms,
    createdAt: row.created_at,
    completedAt: row.completed_at,
    errorMessage: row.error_message,
  };
}

function toAttempt(row: Selectable<AttemptsTable>): AttemptRecord {
  return {
    deliveryId: row.delivery_id,
    attempt: row.attempt,
    webhookId: row.webhook_id,
    attemptedAt: row.attempted_at,
    responseCode: row.response_code,
    durationMs: row.duration_ms,
    errorType: row.error_type,
    errorMessage: row.error_message,
  };
}

/** Rows per INSERT statement: well under SQLite's 32,766 bound parameters at 8 columns. */
const INSERT_CHUNK = 500;

export async function insertDeliveries(store: Store, rows: NewDelivery[]): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await store.db
      .insertInto("webhook_deliveries")
      .values(
        rows.slice(i, i + INSERT_CHUNK).map((d) => ({
          id: d.id,
          webhook_id: d.webhookId,
          event_id: d.eventId,
          event: d.event,
          payload: d.payload,
          status: "pending" as const,
          priority: d.priority,
          next_retry_at: d.nextRetryAt,
          created_at: d.createdAt,
          response_code: null,
          response_body: null,
          completed_at: null,
          error_message: null,
          lease_owner: null,
          lease_until: null,
        })),
      )
      .execute();
  }
}

export async function getDelivery(
  store: Store,
  id: string,
  webhookId?: string,
): Promise<DeliveryRecord | null> {
  let q = store.db.selectFrom("webhook_deliveries").selectAll().where("id", "=", id);
  if (webhookId !== undefined) q = q.where("webhook_id", "=", webhookId);
  const row = await q.executeTakeFirst();
  return row ? toDelivery(row) : null;
}

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  event?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

/** Newest first; `before` is the last id of the previous page (ids sort by creation time). */
export async function listDeliveries(
  store: Store,
  webhookId: string,
  filter: DeliveryFilter,
  page: { limit: number; before?: string | undefined },
): Promise<DeliveryRecord[]> {
  let q = store.db
    .selectFrom("webhook_deliveries")
    .selectAll()
    .where("webhook_id", "=", webhookId)
    .orderBy("id", "desc")
    .limit(page.limit);
  if (filter.status) q = q.where("status", "=", filter.status);
  if (filter.event) q = q.where("event", "=", filter.event);
  if (filter.since) q = q.where("created_at", ">=", filter.since);
  if (filter.until) q = q.where("created_at", "<", filter.until);
  if (page.before) q = q.where("id", "<", page.before);
  return (await q.execute()).map(toDelivery);
}

export type DeliveryUpdate = Partial<
  Pick<
    DeliveryRecord,
    | "status"
    | "attempts"
    | "nextRetryAt"
    | "responseCode"
    | "responseBody"
    | "durationMs"
    | "completedAt"
    | "errorMessage"
  >
>;

export async function updateDelivery(store: Store, id: string, u: DeliveryUpdate): Promise<void> {
  const set: Updateable<DeliveriesTable> = {};
  if (u.status !== undefined) set.status = u.status;
  if (u.attempts !== undefined) set.attempts = u.attempts;
  if (u.nextRetryAt !== undefined) set.next_retry_at = u.nextRetryAt;
  if (u.responseCode !== undefined) set.response_code = u.responseCode;
  if (u.responseBody !== undefined) set.response_body = u.responseBody;
  if (u.durationMs !== undefined) set.duration_ms = u.durationMs;
  if (u.completedAt !== undefined) set.completed_at = u.completedAt;
  if (u.errorMessage !== undefined) set.error_message = u.errorMessage;
  if (Object.keys(set).length === 0) return;
  await store.db.updateTable("webhook_deliveries").set(set).where("id", "=", id).execute();
}

export async function insertAttempt(store: Store, a: AttemptRecord): Promise<void> {
  await store.db
    .insertInto("webhook_delivery_attempts")
    .values({
      delivery_id: a.deliveryId,
      attempt: a.attempt,
      webhook_id: a.webhookId,
      attempted_at: a.attemptedAt,
      response_code: a.responseCode,
      duration_ms: a.durationMs,
      error_type: a.errorType,
      error_message: a.errorMessage,
    })
    .execute();
}

export async function listAttempts(store: Store, deliveryId: string): Promise<AttemptRecord[]> {
  const rows = await store.db
    .selectFrom("webhook_delivery_attempts")
    .selectAll()
    .where("delivery_id", "=", deliveryId)
    .orderBy("attempt", "asc")
    .execute();
  return rows.map(toAttempt);
}

export async function countByStatus(store: Store): Promise<Record<DeliveryStatus, number>> {
  const rows = await store.db
    .selectFrom("webhook_deliveries")
    .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("status")
    .execute();
  const out: Record<DeliveryStatus, number> = { pending: 0, success: 0, failed: 0, dead_letter: 0 };
  for (const r of rows) out[r.status] = Number(r.n);
  return out;
}
