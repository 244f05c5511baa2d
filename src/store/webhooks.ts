import type { Selectable, Updateable } from "kysely";
import { type Store, toBool } from "./db.js";
import type { BreakerState, WebhooksTable } from "./schema.js";

export interface WebhookRecord {
  id: string;
  userId: string;
  url: string;
  secret: string;
  events: string[];
  active: boolean;
  name: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  retrySchedule: number[] | null;
  createdAt: string;
  updatedAt: string;
  failureCount: number;
  lastTriggeredAt: string | null;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
  previousSecret: string | null;
  previousSecretExpiresAt: string | null;
  breakerState: BreakerState;
  breakerOpenedAt: string | null;
  disabledReason: string | null;
}

export interface NewWebhook {
  id: string;
  userId: string;
  url: string;
  secret: string;
  events: string[];
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, unknown> | null;
  retrySchedule?: number[] | null;
  active?: boolean;
  now: string;
}

export type WebhookPatch = Partial<
  Pick<
    WebhookRecord,
    | "url"
    | "events"
    | "active"
    | "name"
    | "description"
    | "metadata"
    | "retrySchedule"
    | "secret"
    | "previousSecret"
    | "previousSecretExpiresAt"
    | "disabledReason"
  >
>;

export class DuplicateWebhookError extends Error {
  override name = "DuplicateWebhookError";
}

export function toWebhook(row: Selectable<WebhooksTable>): WebhookRecord {
  return {
    id: row.id,
    userId: row.user_id,
    url: row.url,
    secret: row.secret,
    events: row.events.split(",").filter(Boolean),
    active: toBool(row.active),
    name: row.name,
    description: row.description,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Record<string, unknown>),
    retrySchedule: row.retry_schedule === null ? null : (JSON.parse(row.retry_schedule) as number[]),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    failureCount: row.failure_count,
    lastTriggeredAt: row.last_triggered_at,
    lastSuccessAt: row.last_success_at,
    lastFailureAt: row.last_failure_at,
    previousSecret: row.previous_secret,
    previousSecretExpiresAt: row.previous_secret_expires_at,
    breakerState: row.breaker_state,
    breakerOpenedAt: row.breaker_opened_at,
    disabledReason: row.disabled_reason,
  };
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return e?.code === "23505" || e?.code === "SQLITE_CONSTRAINT_UNIQUE";
}

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

export async function insertWebhook(store: Store, w: NewWebhook): Promise<WebhookRecord> {
  try {
    const row = await store.db
      .insertInto("webhooks")
      .values({
        id: w.id,
        user_id: w.userId,
        url: w.url,
        secret: w.secret,
        events: w.events.join(","),
        active: store.bool(w.active ?? true),
        name: w.name ?? null,
        description: w.description ?? null,
        metadata: json(w.metadata),
        retry_schedule: json(w.retrySchedule),
        created_at: w.now,
        updated_at: w.now,
        last_triggered_at: null,
        last_success_at: null,
        last_failure_at: null,
        previous_secret: null,
        previous_secret_expires_at: null,
        breaker_opened_at: null,
        disabled_reason: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toWebhook(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateWebhookError("a webhook for this URL already exists");
    throw err;
  }
}

/** With `userId`, another user's webhook is simply not found. */
export async function getWebhook(store: Store, id: string, userId?: string): Promise<WebhookRecord | null> {
  let q = store.db.selectFrom("webhooks").selectAll().where("id", "=", id);
  if (userId !== undefined) q = q.where("user_id", "=", userId);
  const row = await q.executeTakeFirst();
  return row ? toWebhook(row) : null;
}

export async function listWebhooks(
  store: Store,
  userId: string | undefined,
  page: { limit: number; after?: string | undefined },
): Promise<WebhookRecord[]> {
  let q = store.db.selectFrom("webhooks").selectAll().orderBy("id", "asc").limit(page.limit);
  if (userId !== undefined) q = q.where("user_id", "=", userId);
  if (page.after) q = q.where("id", ">", page.after);
  return (await q.execute()).map(toWebhook);
}

/** Active webhooks of `userId` subscribed to `event` (or to `*`). */
export async function listSubscribers(store: Store, userId: string, event: string): Promise<WebhookRecord[]> {
  const rows = await store.db
    .selectFrom("webhooks")
    .selectAll()
    .where("user_id", "=", userId)
    .where("active", "=", store.bool(true))
    .execute();
  return rows.map(toWebhook).filter((w) => w.events.includes(event) || w.events.includes("*"));
}

export async function updateWebhook(
  store: Store,
  id: string,
  userId: string | undefined,
  patch: WebhookPatch,
  now: string,
): Promise<WebhookRecord | null> {
  const set: Updateable<WebhooksTable> = { updated_at: now };
  if (patch.url !== undefined) set.url = patch.url;
  if (patch.events !== undefined) set.events = patch.events.join(",");
  if (patch.active !== undefined) set.active = store.bool(patch.active);
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.description !== undefined) set.description = patch.description;
  if (patch.metadata !== undefined) set.metadata = json(patch.metadata);
  if (patch.retrySchedule !== undefined) set.retry_schedule = json(patch.retrySchedule);
  if (patch.secret !== undefined) set.secret = patch.secret;
  if (patch.previousSecret !== undefined) set.previous_secret = patch.previousSecret;
  if (patch.previousSecretExpiresAt !== undefined)
    set.previous_secret_expires_at = patch.previousSecretExpiresAt;
  if (patch.disabledReason !== undefined) set.disabled_reason = patch.disabledReason;
  if (patch.active === true) set.disabled_reason = null;
  try {
    let q = store.db.updateTable("webhooks").set(set).where("id", "=", id);
    if (userId !== undefined) q = q.where("user_id", "=", userId);
    const row = await q.returningAll().executeTakeFirst();
    return row ? toWebhook(row) : null;
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateWebhookError("a webhook for this URL already exists");
    throw err;
  }
}

export async function deleteWebhook(store: Store, id: string, userId?: string): Promise<boolean> {
  let q = store.db.deleteFrom("webhooks").where("id", "=", id);
  if (userId !== undefined) q = q.where("user_id", "=", userId);
  const res = await q.executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}
