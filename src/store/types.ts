/**
 * The store contract: every statement the service runs on its tables, as one interface that each
 * backend implements in its own folder (store/sqlite/, store/postgres/) and that one conformance
 * suite (test/integration/store.test.ts) holds both to. Callers get domain records (models.ts),
 * never rows. The queues keep only what is theirs (leases held in memory, Redis keys, wake-ups)
 * and call their backend's `queue` statements for SQL.
 */
import type { Kysely } from "kysely";
import type {
  ApiKeyRecord,
  ApiKeyRole,
  AttemptRecord,
  BreakerState,
  DeliveryRecord,
  DeliveryStatus,
  Priority,
  WebhookRecord,
} from "../models.js";
import type { ClaimedDelivery, ClaimRequest, QueueEntry } from "../queue/queue.js";
import type { Database } from "./schema.js";

export type Dialect = "sqlite" | "postgres";

export class DuplicateWebhookError extends Error {
  override name = "DuplicateWebhookError";
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

export interface WebhookStatements {
  /** Throws DuplicateWebhookError when the user already has a webhook for this URL. */
  insert(w: NewWebhook): Promise<WebhookRecord>;
  /** With `userId`, another user's webhook is simply not found. */
  get(id: string, userId?: string): Promise<WebhookRecord | null>;
  /** Oldest first; `after` is the last id of the previous page. */
  list(
    userId: string | undefined,
    page: { limit: number; after?: string | undefined },
  ): Promise<WebhookRecord[]>;
  /** Enabling a webhook clears its disabled_reason. Throws DuplicateWebhookError on a URL clash. */
  update(
    id: string,
    userId: string | undefined,
    patch: WebhookPatch,
    now: string,
  ): Promise<WebhookRecord | null>;
  delete(id: string, userId?: string): Promise<boolean>;
}

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  event?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

export interface StatusCounts {
  by_status: Record<DeliveryStatus, number>;
}

export interface DurationSummary {
  n: number;
  avg: number | null;
  p50: number | null;
  p95: number | null;
}

export interface DeliveryStatements {
  get(id: string, webhookId?: string): Promise<DeliveryRecord | null>;
  /** Newest first; `before` is the last id of the previous page (ids sort by creation time). */
  list(
    webhookId: string,
    filter: DeliveryFilter,
    page: { limit: number; before?: string | undefined },
  ): Promise<DeliveryRecord[]>;
  attempts(deliveryId: string): Promise<AttemptRecord[]>;
  /** A finished delivery back to pending, due `now`; false when it was pending already. */
  requeue(id: string, now: string): Promise<boolean>;
  /**
   * The webhook was enabled again: its deliveries parked while it was disabled (pending, no due
   * time, not leased) fall due `now`. Returns them, for the queue.
   */
  resumeParked(webhookId: string, now: string): Promise<QueueEntry[]>;
  /**
   * A delivery outside the queue (no due time), leased to `leaseOwner` until its one outcome is
   * recorded: the test send.
   */
  insertUnqueued(d: {
    id: string;
    webhookId: string;
    eventId: string;
    event: string;
    body: string;
    createdAt: string;
    leaseOwner: string;
  }): Promise<void>;
  /** Deliveries by status, created at or after `since` (all time when null). */
  countByStatus(webhookId: string, since: string | null): Promise<Record<DeliveryStatus, number>>;
  /** Attempt durations since `since` (all time when null), in milliseconds. */
  durations(webhookId: string, since: string | null): Promise<DurationSummary>;
  /**
   * Deletes up to `limit` finished deliveries (with their attempts) and up to `limit` events
   * created before `cutoff`. Work still to do is never purged, however old.
   */
  purgeBefore(cutoff: string, limit: number): Promise<{ deliveries: number; events: number }>;
}

export interface ApiKeyStatements {
  insert(record: ApiKeyRecord, keyHash: string): Promise<void>;
  /** The active (not revoked) key with this hash, or null. */
  findByHash(keyHash: string): Promise<ApiKeyRecord | null>;
  list(): Promise<ApiKeyRecord[]>;
  countActive(): Promise<number>;
  /** False when no such key exists or it was already revoked. */
  revoke(id: string, now: string): Promise<boolean>;
  touch(id: string, now: string): Promise<void>;
}

export interface EmitRow {
  eventId: string;
  userId: string;
  event: string;
  /** The canonical body: what receivers get, byte for byte. */
  body: string;
  priority: number;
  priorityName: Priority;
  idempotencyKey: string | null;
  newDeliveryId: () => string;
}

export interface EmitWrite {
  id: string;
  deliveries: number;
  /** True when an earlier event with the same idempotency key answered instead. */
  duplicate: boolean;
  entries: QueueEntry[];
}

export interface Outcome {
  deliveryId: string;
  webhookId: string;
  event: string;
  priority: number;
  /** This attempt's number (1-based): the delivery's attempts count after it. */
  attempt: number;
  attemptedAt: string;
  status: DeliveryStatus;
  nextRetryAt: string | null;
  responseCode: number | null;
  responseBody: string | null;
  durationMs: number;
  completedAt: string | null;
  errorType: string | null;
  errorMessage: string | null;
  /** False when no request was made (the webhook was disabled): no attempt row, no counters. */
  attempted: boolean;
}

export interface OutcomeBatch {
  /** Only deliveries this claimer still holds are updated. */
  leaseOwner: string;
  /**
   * SQLite: write only while `leaseOwner` still holds the engine lock (a worker that stalled
   * past its lock must not overwrite what its successor recorded). False for one-off writes
   * outside the queue, such as a test send.
   */
  requireEngineLock: boolean;
  outcomes: Outcome[];
  breakers: Array<{ webhookId: string; state: BreakerState; openedAt: string | null }>;
  disabled: Array<{ webhookId: string; reason: string; at: string }>;
}

/** The delivery engine's writes, each ONE transaction. */
export interface EngineStatements {
  /** Events and one delivery per active subscribed webhook, with idempotency, in one commit. */
  emit(rows: EmitRow[], now: string, idempotencyCutoff: string): Promise<EmitWrite[]>;
  /** Returns the outcomes that were applied (a lost lease drops one). */
  recordOutcomes(batch: OutcomeBatch): Promise<Outcome[]>;
  /** The webhook as the dispatcher needs it, read fresh. */
  webhookForDispatch(id: string): Promise<WebhookRecord | null>;
}

/** Heartbeats of the processes that deliver. */
export interface WorkerStatements {
  /** `owner` is alive until `until`. */
  beat(owner: string, until: string): Promise<void>;
  /** Owners whose heartbeat has not run out at `now`. */
  alive(now: string): Promise<number>;
  /** `owner` stopped: forget it at once. */
  retire(owner: string): Promise<void>;
}

/** The embedded queue's statements (store/sqlite/queue.ts). */
export interface SqliteQueueStatements {
  /** Due deliveries of one webhook at one priority, oldest due first, leaving out `held` (in flight). */
  due(
    webhookId: string,
    now: string,
    priority: number,
    limit: number,
    held?: readonly string[],
  ): ClaimedDelivery[];
  readyWebhooks(now: string): string[];
  /** Makes waiting deliveries due at `dueAt` again (a release). */
  reschedule(ids: readonly string[], dueAt: string): void;
  depth(): Record<Priority, number>;
  /**
   * Takes or renews the engine lock until `until`: "taken" when it was not ours before (what we
   * remember from an earlier tenure is void), "refused" while another live process holds it.
   * `isDead` tells whether a holder's process is gone.
   */
  takeLock(
    owner: string,
    now: string,
    until: string,
    isDead: (holder: string) => boolean,
  ): "taken" | "renewed" | "refused";
  /** Pushes our lock's expiry out to `until`; false when we no longer hold it. */
  renewLock(owner: string, until: string): boolean;
  releaseLock(owner: string): void;
}

/** A waiting row as the Redis queue's recovery sweep reads it. */
export interface SweepRow {
  id: string;
  webhook_id: string;
  priority: number;
  /** Epoch milliseconds. */
  due: number;
  lease_owner: string | null;
  lease_until: number | null;
}

/** The statements of the Postgres-only and Redis queues (store/postgres/queue.ts). */
export interface PgQueueStatements {
  readyWebhooks(now: string): Promise<string[]>;
  /**
   * Per-webhook claims under per-webhook advisory locks: never more than `limit` leased for a
   * webhook across every claimer.
   */
  claim(
    requests: readonly ClaimRequest[],
    now: string,
    leaseUntil: string,
    owner: string,
  ): Promise<ClaimedDelivery[]>;
  /** Stamps the lease on rows Redis handed out; returns those still waiting and due (or leased). */
  stampLeases(
    ids: readonly string[],
    now: string,
    leaseUntil: string,
    owner: string,
  ): Promise<ClaimedDelivery[]>;
  /** When each still-waiting delivery is due, epoch ms. */
  dueTimes(ids: readonly string[]): Promise<Array<{ id: string; due: number }>>;
  extendLeases(ids: readonly string[], leaseUntil: string, owner: string): Promise<void>;
  release(ids: readonly string[], dueAt: string, owner: string): Promise<void>;
  depth(): Promise<Record<Priority, number>>;
  /** Every waiting row, keyset pages by id. */
  waitingPage(afterId: string, limit: number): Promise<SweepRow[]>;
  /** Waiting rows due in (from, upTo], keyset pages by (due, id). */
  dueWindowPage(
    from: string,
    upTo: string,
    after: { due: string; id: string },
    limit: number,
  ): Promise<SweepRow[]>;
  existingWebhooks(ids: readonly string[]): Promise<string[]>;
  /** The channel emits NOTIFY on, with comma-separated webhook ids. */
  readonly wakeChannel: string;
}

interface StoreBase {
  readonly dialect: Dialect;
  /** Where the data lives, without credentials: for logs and health output. */
  readonly location: string;
  /**
   * Kysely over the same connection, for the migrations and for tests that inspect state.
   * Production statements live in the backend's folder, behind the interfaces above.
   */
  readonly db: Kysely<Database>;
  readonly webhooks: WebhookStatements;
  readonly deliveries: DeliveryStatements;
  readonly apiKeys: ApiKeyStatements;
  readonly engine: EngineStatements;
  readonly workers: WorkerStatements;
  ping(): Promise<void>;
  /** Callable twice; returns the same promise. */
  close(): Promise<void>;
}

export interface SqliteStore extends StoreBase {
  readonly dialect: "sqlite";
  readonly queue: SqliteQueueStatements;
  /** The better-sqlite3 handle (tests and benches that measure raw inserts). */
  readonly sqlite: import("better-sqlite3").Database;
}

export interface PostgresStore extends StoreBase {
  readonly dialect: "postgres";
  readonly queue: PgQueueStatements;
  /** The pool; the queue opens its LISTEN connection with the same settings. */
  readonly pool: import("pg").Pool;
}

export type Store = SqliteStore | PostgresStore;

export type { ApiKeyRole };
