/**
 * emit / emitBatch: validate, then ONE transaction writes each event and a delivery for every
 * active webhook of that user subscribed to its type; only after the commit are the deliveries
 * handed to the queue. An acknowledged event is therefore on disk before emit() returns.
 */
import type { Clock } from "./clock.js";
import type { EngineEvents } from "./engine-events.js";
import {
  defaultPriority,
  type EventData,
  type EventType,
  isEventType,
  unknownEventTypeReason,
} from "./events.js";
import { newId } from "./ids.js";
import { PRIORITY_NAMES, PRIORITY_RANK, type Priority } from "./models.js";
import type { Handoffs } from "./queue/queue.js";
import { CanonicalJsonError, canonicalJson } from "./signer.js";
import type { EmitRow, EngineStatements } from "./store/types.js";
import { isStorableText, UNSTORABLE_TEXT, unstorablePath } from "./text.js";

export interface EmitOptions {
  userId: string;
  data: Record<string, unknown>;
  priority?: Priority;
  /** The same key for the same user within 24 h returns the first result and writes nothing. */
  idempotencyKey?: string;
}

export interface EmitInput extends EmitOptions {
  event: string;
}

export interface EmitResult {
  /** The event id (`evt_…`), shared by all its deliveries. */
  id: string;
  /** Deliveries created: one per active subscribed webhook. */
  deliveries: number;
  /** True when an earlier emit with the same idempotency key answered. */
  duplicate: boolean;
}

export type EmitErrorCode =
  | "unknown_event"
  | "invalid_user"
  | "invalid_data"
  | "invalid_priority"
  | "invalid_idempotency_key"
  | "invalid_batch";

/**
 * A refused emit; nothing was written. `index` names the event within a batch (emitBatch always
 * sets it, emit never does); `reason` is the message without it. The API answers `unknown_event`
 * as 422 `unknown_event_type` and every other code as 422 `invalid_field`, naming `field`.
 */
export class EmitError extends Error {
  override name = "EmitError";
  readonly reason: string;
  constructor(
    readonly code: EmitErrorCode,
    readonly field: string,
    message: string,
    readonly index?: number,
  ) {
    super(index === undefined ? message : `events[${index}]: ${message}`);
    this.reason = message;
  }

  /** The same refusal of an event that was sent alone. */
  withoutIndex(): EmitError {
    return this.index === undefined ? this : new EmitError(this.code, this.field, this.reason);
  }
}

export const MAX_BATCH = 1000;
export const MAX_BODY_BYTES = 256 * 1024;
const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;
const LABEL = /^[^\p{Cc}]{1,255}$/u;
const LABEL_RULE = "1 to 255 characters, without control characters";

/** The rule for user ids and idempotency keys, for the API to check the ones it is sent the same way. */
export function isLabel(value: unknown): value is string {
  return typeof value === "string" && LABEL.test(value) && isStorableText(value);
}

export function labelReason(field: string, value: unknown): string {
  return value === undefined ? `${field} is required` : `${field} must be ${LABEL_RULE}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export interface EmitterDeps {
  engineStore: EngineStatements;
  handoffs: Handoffs;
  clock: Clock;
  events: EngineEvents;
}

export class Emitter {
  constructor(private readonly deps: EmitterDeps) {}

  emit(event: string, options: EmitOptions): Promise<EmitResult> {
    return this.emitBatch([{ event, ...options }]).then(
      (r) => r[0]!,
      (err: unknown) => {
        throw err instanceof EmitError ? err.withoutIndex() : err;
      },
    );
  }

  /** All or nothing: one invalid event refuses the whole batch. */
  async emitBatch(inputs: readonly EmitInput[]): Promise<EmitResult[]> {
    if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_BATCH) {
      const what = inputs === undefined ? "events is required" : "events must be a list";
      throw new EmitError("invalid_batch", "events", `${what} of 1 to ${MAX_BATCH} events`);
    }
    const now = this.deps.clock.now();
    const createdAt = new Date(now).toISOString();
    const rows = inputs.map((input, i) => prepare(input, createdAt, i));
    const writes = await this.deps.engineStore.emit(
      rows,
      createdAt,
      new Date(now - IDEMPOTENCY_WINDOW_MS).toISOString(),
    );
    const entries = writes.flatMap((w) => w.entries);
    if (entries.length > 0) {
      // Committed: the answer goes out now, and the queue is told in the background.
      this.deps.handoffs.send(entries, now);
      const byPriority = new Map<number, number>();
      for (const e of entries) byPriority.set(e.priority, (byPriority.get(e.priority) ?? 0) + 1);
      for (const [p, count] of byPriority) {
        this.deps.events.emit("enqueued", { count, priority: PRIORITY_NAMES[p] ?? "normal" });
      }
    }
    return writes.map((w) => ({ id: w.id, deliveries: w.deliveries, duplicate: w.duplicate }));
  }

  // Typed helpers, one per event type: camelCase in, the documented snake_case `data` out.

  emitMemoryCreated(
    o: Common & { memoryId: string; contentPreview: string; concepts: string[]; importance: number },
  ) {
    return this.#typed("memory.created", o, {
      memory_id: o.memoryId,
      content_preview: o.contentPreview,
      concepts: o.concepts,
      importance: o.importance,
    });
  }
  emitMemoryUpdated(o: Common & { memoryId: string; changedFields: string[]; contentPreview?: string }) {
    return this.#typed("memory.updated", o, {
      memory_id: o.memoryId,
      changed_fields: o.changedFields,
      ...(o.contentPreview === undefined ? {} : { content_preview: o.contentPreview }),
    });
  }
  emitMemoryDeleted(o: Common & { memoryId: string; reason?: string }) {
    return this.#typed("memory.deleted", o, {
      memory_id: o.memoryId,
      ...(o.reason === undefined ? {} : { reason: o.reason }),
    });
  }
  emitConceptDiscovered(
    o: Common & { conceptId: string; name: string; relatedMemoryIds: string[]; confidence: number },
  ) {
    return this.#typed("concept.discovered", o, {
      concept_id: o.conceptId,
      name: o.name,
      related_memory_ids: o.relatedMemoryIds,
      confidence: o.confidence,
    });
  }
  emitSessionStarted(o: Common & { sessionId: string; client?: string }) {
    return this.#typed("session.started", o, {
      session_id: o.sessionId,
      ...(o.client === undefined ? {} : { client: o.client }),
    });
  }
  emitSessionEnded(o: Common & { sessionId: string; durationMs: number; memoriesCreated: number }) {
    return this.#typed("session.ended", o, {
      session_id: o.sessionId,
      duration_ms: o.durationMs,
      memories_created: o.memoriesCreated,
    });
  }
  emitSyncCompleted(o: Common & { syncId: string; itemsSynced: number; durationMs: number }) {
    return this.#typed("sync.completed", o, {
      sync_id: o.syncId,
      items_synced: o.itemsSynced,
      duration_ms: o.durationMs,
    });
  }
  emitSyncFailed(o: Common & { syncId: string; error: string; retryable: boolean }) {
    return this.#typed("sync.failed", o, { sync_id: o.syncId, error: o.error, retryable: o.retryable });
  }
  emitUserCreated(o: Common & { plan?: string }) {
    return this.#typed("user.created", o, o.plan === undefined ? {} : { plan: o.plan });
  }
  emitQuotaWarning(o: Common & { resource: string; used: number; limit: number; percent: number }) {
    return this.#typed("quota.warning", o, {
      resource: o.resource,
      used: o.used,
      limit: o.limit,
      percent: o.percent,
    });
  }
  emitQuotaExceeded(o: Common & { resource: string; used: number; limit: number }) {
    return this.#typed("quota.exceeded", o, { resource: o.resource, used: o.used, limit: o.limit });
  }

  #typed<E extends EventType>(event: E, o: Common, data: EventData[E]): Promise<EmitResult> {
    return this.emit(event, {
      userId: o.userId,
      data: data as Record<string, unknown>,
      ...(o.priority === undefined ? {} : { priority: o.priority }),
      ...(o.idempotencyKey === undefined ? {} : { idempotencyKey: o.idempotencyKey }),
    });
  }
}

type Common = { userId: string; priority?: Priority; idempotencyKey?: string };

function prepare(input: EmitInput, createdAt: string, index: number | undefined): EmitRow {
  if (!isPlainObject(input))
    throw new EmitError("invalid_batch", "", "each event must be a JSON object", index);
  const { event, userId, data, priority, idempotencyKey } = input;
  if (!isEventType(event)) {
    throw new EmitError("unknown_event", "event", unknownEventTypeReason(event), index);
  }
  if (!isLabel(userId)) throw new EmitError("invalid_user", "user_id", labelReason("user_id", userId), index);
  if (data === undefined) {
    throw new EmitError(
      "invalid_data",
      "data",
      "data is required: a JSON object ({} when there is nothing to say)",
      index,
    );
  }
  if (!isPlainObject(data)) throw new EmitError("invalid_data", "data", "data must be a JSON object", index);
  const unstorable = unstorablePath(data, "data");
  if (unstorable !== null) {
    throw new EmitError("invalid_data", unstorable, `${unstorable} ${UNSTORABLE_TEXT}`, index);
  }
  // Own keys only: "toString" is `in` every object.
  if (priority !== undefined && (typeof priority !== "string" || !Object.hasOwn(PRIORITY_RANK, priority))) {
    throw new EmitError("invalid_priority", "priority", "priority must be high, normal or low", index);
  }
  if (idempotencyKey !== undefined && !isLabel(idempotencyKey)) {
    throw new EmitError(
      "invalid_idempotency_key",
      "idempotency_key",
      labelReason("idempotency_key", idempotencyKey),
      index,
    );
  }
  const eventId = newId("evt");
  let body: string;
  try {
    body = canonicalJson({ id: eventId, event, created_at: createdAt, user_id: userId, data });
  } catch (err) {
    if (err instanceof CanonicalJsonError) {
      throw new EmitError("invalid_data", "data", `data cannot be sent as JSON: ${err.message}`, index);
    }
    throw err;
  }
  if (body.length > MAX_BODY_BYTES) {
    throw new EmitError(
      "invalid_data",
      "data",
      `the event is larger than ${MAX_BODY_BYTES / 1024} KiB serialized: send less data, or a reference to it`,
      index,
    );
  }
  const p = priority ?? defaultPriority(event);
  return {
    eventId,
    userId,
    event,
    body,
    priority: PRIORITY_RANK[p],
    priorityName: p,
    idempotencyKey: idempotencyKey ?? null,
    newDeliveryId: () => newId("dlv"),
  };
}
