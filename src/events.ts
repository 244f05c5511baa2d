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

/**
 * Edit distance counting an adjacent transposition as one edit ("craeted" is one from "created"),
 * as typos usually are.
 */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate `word` was most likely meant to be, or undefined when none is close enough to be
 * a typo of it: a suggestion that is far off misleads more than no suggestion. Case, `_`, `-`
 * and `.` are ignored first, so `userId` finds `user_id`.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  if (word.length > 64) return undefined;
  const fold = (s: string) => s.toLowerCase().replace(/[-_.]/g, "");
  const folded = fold(word);
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(word.length / 3));
  for (const c of candidates) {
    if (fold(c) === folded) return c;
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist <= bestDistance && (best === undefined || dist < bestDistance)) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/**
 * Why `value` is not an event type, in words that lead to the fix: the nearest valid type when it
 * looks like a typo of one, and the valid types. `subscription` adds "*".
 */
export function unknownEventTypeReason(value: unknown, subscription = false): string {
  const list = `valid types: ${EVENT_TYPES.join(", ")}${subscription ? ', or "*" for all' : ""}`;
  if (value === undefined || value === "") return `an event type is required; ${list}`;
  if (typeof value !== "string") return `an event type is a string such as memory.created; ${list}`;
  const shown = JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (value === TEST_EVENT) {
    return `${shown} is sent only by POST /api/v1/webhooks/{id}/test, to any webhook; ${list}`;
  }
  const near = closest(value, subscription ? ["*", ...EVENT_TYPES] : EVENT_TYPES);
  return `${shown} is not an event type${near ? `; did you mean ${near}?` : ""}; ${list}`;
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
