/**
 * The writes the delivery engine makes, each ONE transaction: an emit (events + their
 * deliveries) and a batch of attempt outcomes (attempt rows, delivery status, webhook counters,
 * breaker transitions). One implementation per database.
 */
import type { QueueEntry } from "../queue/queue.js";
import type { BreakerState, DeliveryStatus } from "./schema.js";
import type { WebhookDispatchRow } from "./sqlite-engine.js";

export interface EmitRow {
  eventId: string;
  userId: string;
  event: string;
  /** The canonical body: what receivers get, byte for byte. */
  body: string;
  priority: number;
  priorityName: string;
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

export interface EngineStore {
  emit(rows: EmitRow[], now: string, idempotencyCutoff: string): Promise<EmitWrite[]>;
  /** Returns the outcomes that were applied (a lost lease drops one). */
  recordOutcomes(batch: OutcomeBatch): Promise<Outcome[]>;
  webhookForDispatch(id: string): Promise<WebhookDispatchRow | null>;
}

export type { WebhookDispatchRow };
