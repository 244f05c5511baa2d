/**
 * What both backends share and that is not SQL: turning their rows into domain records (the
 * drivers are set up so both return ISO times, JSON as text and counts as numbers), the rules an
 * emit and an outcome batch apply in memory, and the one condition for "work still to do".
 */
import type { Selectable } from "kysely";
import {
  type ApiKeyRecord,
  type AttemptRecord,
  type DeliveryRecord,
  type DeliveryStatus,
  PRIORITY_NAMES,
  type Priority,
  type WebhookRecord,
} from "../models.js";
import type { ClaimedDelivery } from "../queue/queue.js";
import type { ApiKeysTable, AttemptsTable, DeliveriesTable, WebhooksTable } from "./schema.js";
import type { Outcome } from "./types.js";

/** SQL condition for work still to do: pending, or failed with a retry scheduled. */
export const WAITING = "status IN ('pending', 'failed') AND next_retry_at IS NOT NULL";

export type WebhookRow = Selectable<WebhooksTable>;

export function toWebhook(row: WebhookRow): WebhookRecord {
  return {
    id: row.id,
    userId: row.user_id,
    url: row.url,
    secret: row.secret,
    events: row.events.split(",").filter(Boolean),
    active: row.active === true || row.active === 1,
    name: row.name,
    description: row.description,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Record<string, unknown>),
    retrySchedule: parseSchedule(row.retry_schedule),
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

/** A schedule written by an older version may be anything: such a webhook uses the default. */
function parseSchedule(text: string | null): number[] | null {
  if (text === null) return null;
  try {
    const parsed = JSON.parse(text) as unknown;
    return Array.isArray(parsed) && parsed.length > 0 && parsed.every((n) => typeof n === "number")
      ? parsed
      : null;
  } catch {
    return null;
  }
}

export const WEBHOOK_COLUMNS =
  "id, user_id, url, secret, events, active, created_at, updated_at, failure_count, last_triggered_at, " +
  "last_success_at, last_failure_at, metadata, name, description, previous_secret, " +
  "previous_secret_expires_at, retry_schedule, breaker_state, breaker_opened_at, disabled_reason";

/** What DELIVERY_COLUMNS selects: everything but the lease. */
export type DeliveryRow = Omit<Selectable<DeliveriesTable>, "lease_owner" | "lease_until" | "payload"> & {
  /** Read through DELIVERY_FROM: null only when neither the delivery nor its event holds one. */
  payload: string | null;
};

/**
 * An event's payload is stored once, on its `webhook_events` row (CONTRACT §2); a delivery's own
 * `payload` is NULL unless it has no event row (a test send, or a row written before migration
 * 003). Every read of a delivery's payload goes through this join.
 */
export const DELIVERY_FROM = "webhook_deliveries d LEFT JOIN webhook_events e ON e.id = d.event_id";
export const DELIVERY_PAYLOAD = "COALESCE(d.payload, e.payload)";

export const DELIVERY_COLUMNS =
  `d.id, d.webhook_id, d.event_id, d.event, ${DELIVERY_PAYLOAD} AS payload, d.status, d.priority, ` +
  "d.attempts, d.next_retry_at, d.response_code, d.response_body, d.duration_ms, d.created_at, " +
  "d.completed_at, d.error_message";

/** Events older than the retention cutoff whose deliveries are all gone (they hold the payload). */
export const PURGEABLE_EVENTS =
  "NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)";

export function toDelivery(row: DeliveryRow, body: (payload: string) => string): DeliveryRecord {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    eventId: row.event_id,
    event: row.event,
    payload: row.payload === null ? null : body(row.payload),
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

export type AttemptRow = Selectable<AttemptsTable>;

export const ATTEMPT_COLUMNS =
  "delivery_id, attempt, webhook_id, attempted_at, response_code, duration_ms, error_type, error_message";

export function toAttempt(row: AttemptRow): AttemptRecord {
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

/** What API_KEY_COLUMNS selects: everything but the hash. */
export type ApiKeyRow = Omit<Selectable<ApiKeysTable>, "key_hash">;

export const API_KEY_COLUMNS = "id, user_id, role, name, key_prefix, created_at, last_used_at, revoked_at";

export function toApiKey(r: ApiKeyRow): ApiKeyRecord {
  return {
    id: r.id,
    userId: r.user_id,
    role: r.role,
    name: r.name,
    prefix: r.key_prefix,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

/** A claimed row as every claim statement returns it. */
export interface ClaimRow {
  id: string;
  webhook_id: string;
  priority: number;
  event: string;
  event_id: string | null;
  /** Null only when neither the delivery nor its event row holds one. */
  payload: string | null;
  attempts: number;
}

/**
 * The bodies of recently claimed events, by event id. Every delivery of one event in flight then
 * shares one string (a 255 KiB event sent to 500 webhooks holds 255 KiB, not 125 MiB), and
 * PostgreSQL's JSONB is canonicalized once per event instead of once per delivery. An event's
 * payload never changes, so a cached body is never stale. Bounded by size; oldest out first.
 */
export class BodyCache {
  readonly #bodies = new Map<string, string>();
  #chars = 0;

  constructor(
    /** Turns the stored payload into the exact bytes to send (PostgreSQL re-canonicalizes). */
    private readonly canonical: (stored: string) => string,
    private readonly maxChars = 16 * 1024 * 1024,
  ) {}

  body(eventId: string | null, stored: string | null): string | null {
    if (stored === null) return null;
    if (eventId === null) return this.canonical(stored);
    const hit = this.#bodies.get(eventId);
    if (hit !== undefined) return hit;
    const body = this.canonical(stored);
    if (body.length > this.maxChars) return body;
    this.#bodies.set(eventId, body);
    this.#chars += body.length;
    for (const [id, old] of this.#bodies) {
      if (this.#chars <= this.maxChars) break;
      this.#bodies.delete(id);
      this.#chars -= old.length;
    }
    return body;
  }

  get size(): number {
    return this.#bodies.size;
  }
}

export function toClaimed(r: ClaimRow, bodies: BodyCache): ClaimedDelivery {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    priority: r.priority,
    event: r.event,
    payload: bodies.body(r.event_id, r.payload),
    attempts: r.attempts,
  };
}

/** Counts by priority rank (0 high, 1 normal, 2 low) as the named depth every queue reports. */
export function depthByPriority(
  rows: ReadonlyArray<{ priority: number; n: number }>,
): Record<Priority, number> {
  const out: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
  for (const r of rows) {
    const name = PRIORITY_NAMES[r.priority];
    if (name) out[name] += Number(r.n);
  }
  return out;
}

export function emptyStatusCounts(): Record<DeliveryStatus, number> {
  return { pending: 0, success: 0, failed: 0, dead_letter: 0 };
}

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return e?.code === "23505" || e?.code === "SQLITE_CONSTRAINT_UNIQUE";
}

export const jsonOrNull = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/** Whether a webhook subscribed to `events` (comma-separated) gets `event`. */
export function subscribed(events: string, event: string): boolean {
  for (const e of events.split(",")) if (e === event || e === "*") return true;
  return false;
}

export interface Counters {
  /** Consecutive failures after the batch: absolute when the batch had a success, else a delta. */
  failures: number;
  lastAt: string;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
}

/** One counter update per webhook per batch, whatever the number of deliveries in it. */
export function summarizeCounters(outcomes: readonly Outcome[]): Map<string, Counters> {
  const out = new Map<string, Counters>();
  for (const o of outcomes) {
    let c = out.get(o.webhookId);
    if (!c) {
      c = { failures: 0, lastAt: o.attemptedAt, lastSuccessAt: null, lastFailureAt: null };
      out.set(o.webhookId, c);
    }
    if (o.attemptedAt > c.lastAt) c.lastAt = o.attemptedAt;
    if (o.status === "success") {
      c.failures = 0;
      c.lastSuccessAt = o.attemptedAt;
    } else {
      c.failures += 1;
      c.lastFailureAt = o.attemptedAt;
    }
  }
  return out;
}

/** Columns a webhook patch may set, with how each value is stored. */
export function webhookPatchColumns(
  patch: import("./types.js").WebhookPatch,
  bool: (v: boolean) => number | boolean,
): Array<[column: string, value: unknown]> {
  const set: Array<[string, unknown]> = [];
  if (patch.url !== undefined) set.push(["url", patch.url]);
  if (patch.events !== undefined) set.push(["events", patch.events.join(",")]);
  if (patch.active !== undefined) set.push(["active", bool(patch.active)]);
  if (patch.name !== undefined) set.push(["name", patch.name]);
  if (patch.description !== undefined) set.push(["description", patch.description]);
  if (patch.metadata !== undefined) set.push(["metadata", jsonOrNull(patch.metadata)]);
  if (patch.retrySchedule !== undefined) set.push(["retry_schedule", jsonOrNull(patch.retrySchedule)]);
  if (patch.secret !== undefined) set.push(["secret", patch.secret]);
  if (patch.previousSecret !== undefined) set.push(["previous_secret", patch.previousSecret]);
  if (patch.previousSecretExpiresAt !== undefined)
    set.push(["previous_secret_expires_at", patch.previousSecretExpiresAt]);
  if (patch.disabledReason !== undefined) set.push(["disabled_reason", patch.disabledReason]);
  else if (patch.active === true) set.push(["disabled_reason", null]);
  return set;
}

/**
 * Breaker transitions and disables that a batch may write: a webhook whose every outcome in the
 * batch was refused (a stale claimer's, after another took over) must not have its breaker or
 * its state changed by what that claimer saw.
 */
export function fencedChanges(
  batch: import("./types.js").OutcomeBatch,
  applied: readonly Outcome[],
): Pick<import("./types.js").OutcomeBatch, "breakers" | "disabled"> {
  const tried = new Set(batch.outcomes.map((o) => o.webhookId));
  const landed = new Set(applied.map((o) => o.webhookId));
  const allowed = (webhookId: string) => !tried.has(webhookId) || landed.has(webhookId);
  return {
    breakers: batch.breakers.filter((b) => allowed(b.webhookId)),
    disabled: batch.disabled.filter((d) => allowed(d.webhookId)),
  };
}

/** A delivery the worker parked because it found its webhook disabled (no request was made). */
export function isParked(o: Outcome): boolean {
  return !o.attempted && o.status === "pending" && o.nextRetryAt === null;
}

/**
 * The worker's copy of a webhook may be older than an enable that just landed (another process
 * enabled it, and resumed the parked deliveries before this one parked): parking is decided
 * again inside the outcome's transaction, on the webhook as stored, so a delivery is never left
 * parked behind an enabled webhook. `active` holds the webhooks found enabled.
 */
export function unparkWhereEnabled(outcomes: Outcome[], active: ReadonlySet<string>, now: string): Outcome[] {
  return outcomes.map((o) =>
    isParked(o) && active.has(o.webhookId) ? { ...o, nextRetryAt: now, errorMessage: null } : o,
  );
}
