/**
 * The event catalog: the eleven CONTINUUM event types, their priority and the shape of `data`.
 * Pure: no I/O. docs/EVENTS.md documents each type; a test keeps the two in step.
 */
import type { Priority } from "./models.js";

export const EVENT_TYPES = [
  "memory.created",
  "memory.updated",
  "memory.deleted",
  "concept.discovered",
  "session.started",
  "session.ended",
  "sync.completed",
  "sync.failed",
  "user.created",
  "quota.warning",
  "quota.exceeded",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Sent by `POST /webhooks/{id}/test`; never emitted by producers, never subscribed to. */
export const TEST_EVENT = "webhook.test";

const HIGH: ReadonlySet<string> = new Set(["sync.failed", "quota.warning", "quota.exceeded"]);

export function isEventType(value: unknown): value is EventType {
  return typeof value === "string" && (EVENT_TYPES as readonly string[]).includes(value);
}

/** A subscription entry: an event type or `*`. */
export function isSubscription(value: unknown): boolean {
  return value === "*" || isEventType(value);
}

export function defaultPriority(event: string): Priority {
  return HIGH.has(event) ? "high" : "normal";
}

/** The `data` of each event type, as sent to receivers (snake_case, like the whole envelope). */
export interface EventData {
  "memory.created": { memory_id: string; content_preview: string; concepts: string[]; importance: number };
  "memory.updated": { memory_id: string; changed_fields: string[]; content_preview?: string };
  "memory.deleted": { memory_id: string; reason?: string };
  "concept.discovered": {
    concept_id: string;
    name: string;
    related_memory_ids: string[];
    confidence: number;
  };
  "session.started": { session_id: string; client?: string };
  "session.ended": { session_id: string; duration_ms: number; memories_created: number };
  "sync.completed": { sync_id: string; items_synced: number; duration_ms: number };
  "sync.failed": { sync_id: string; error: string; retryable: boolean };
  "user.created": { plan?: string };
  "quota.warning": { resource: string; used: number; limit: number; percent: number };
  "quota.exceeded": { resource: string; used: number; limit: number };
}

/** The envelope every receiver gets, whatever the type. */
export interface WebhookPayload<E extends string = string, D = Record<string, unknown>> {
  id: string;
  event: E;
  created_at: string;
  user_id: string;
  data: D;
}
