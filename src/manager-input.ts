/**
 * Checking what a caller asks the manager for: every refusal names the field at fault and
 * changes nothing.
 */
import { parseDuration } from "./duration.js";
import { isSubscription, unknownEventTypeReason } from "./events.js";
import { isId } from "./ids.js";
import { isStorableText, UNSTORABLE_TEXT, unstorablePath } from "./text.js";

/** A webhook as the API and the library take it (snake_case, as sent). */
export interface WebhookInput {
  url: string;
  events: string[];
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, unknown> | null;
  /** Durations (`"1s"`, `"5m"`) or milliseconds; null for the service default. */
  retry_schedule?: Array<string | number> | null;
  active?: boolean;
}

/**
 * Each code is also the problem type the API answers with, so a refusal reads the same over HTTP
 * and in a library call: `invalid_request` 400 (the input is not an object at all),
 * `invalid_cursor` 400, `invalid_field` 422 (a field is missing, of the wrong type or has a value
 * not accepted), `unknown_event_type` 422, `invalid_url` 422, `not_found` 404, `conflict` 409.
 */
export type ManagerErrorCode =
  | "not_found"
  | "conflict"
  | "invalid_url"
  | "invalid_field"
  | "invalid_cursor"
  | "invalid_request"
  | "unknown_event_type";

/** A refused operation; nothing was changed. `field` names the offending input. */
export class ManagerError extends Error {
  override name = "ManagerError";
  constructor(
    readonly code: ManagerErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The limits on webhook input and listing, owned here; the API's document shows these numbers. */
export const LIMITS = {
  url: 2048,
  name: 100,
  description: 500,
  metadata: 4096,
  events: 20,
  schedule: 20,
  /** The longest delay a retry schedule may hold, in ms. */
  delay: 86_400_000,
  pageSize: 100,
  defaultPageSize: 20,
  cursor: 100,
};

/** The fields a webhook has, in the order the API documents them. */
export const WEBHOOK_FIELDS = [
  "url",
  "events",
  "name",
  "description",
  "metadata",
  "retry_schedule",
  "active",
] as const;

export function encodeCursor(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string, prefix: "whk" | "dlv"): string {
  const re = new RegExp(`^[A-Za-z0-9_-]{1,${LIMITS.cursor}}$`);
  const id =
    typeof cursor === "string" && re.test(cursor) ? Buffer.from(cursor, "base64url").toString("utf8") : "";
  if (!isId(id, prefix))
    throw new ManagerError(
      "invalid_cursor",
      "cursor is not one this API returned: pass next_cursor from the previous page as it is, or leave it out for the first page",
      "cursor",
    );
  return id;
}

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return LIMITS.defaultPageSize;
  if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.pageSize) {
    throw new ManagerError(
      "invalid_field",
      `limit must be a whole number from 1 to ${LIMITS.pageSize} (default ${LIMITS.defaultPageSize})`,
      "limit",
    );
  }
  return limit;
}

export interface CheckedFields {
  events?: string[];
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, unknown> | null;
  retrySchedule?: number[] | null;
  active?: boolean;
}

/** Characters as JSON Schema's maxLength counts them (code points), so the document's limit holds. */
function characters(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function optionalText(v: unknown, field: string, max: number): string | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== "string" || characters(v) > max) {
    throw new ManagerError(
      "invalid_field",
      `${field} must be a string of at most ${max} characters, or null to clear it`,
      field,
    );
  }
  if (!isStorableText(v)) throw new ManagerError("invalid_field", `${field} ${UNSTORABLE_TEXT}`, field);
  return v;
}

function checkEvents(ev: unknown): string[] {
  if (ev === undefined) {
    throw new ManagerError(
      "invalid_field",
      'events is required: the event types to receive, or ["*"] for all',
      "events",
    );
  }
  if (!Array.isArray(ev) || ev.length === 0 || ev.length > LIMITS.events) {
    throw new ManagerError(
      "invalid_field",
      `events must list 1 to ${LIMITS.events} event types, or ["*"] for all`,
      "events",
    );
  }
  for (const [i, e] of ev.entries()) {
    if (!isSubscription(e)) {
      throw new ManagerError(
        "unknown_event_type",
        `events[${i}]: ${unknownEventTypeReason(e, true)}`,
        `events[${i}]`,
      );
    }
  }
  return [...new Set(ev as string[])];
}

export function checkFields(input: Partial<WebhookInput>, creating: boolean): CheckedFields {
  if (typeof input !== "object" || input === null || Array.isArray(input))
    throw new ManagerError("invalid_request", "the webhook input must be an object", "body");
  if (!creating && !WEBHOOK_FIELDS.some((f) => input[f] !== undefined)) {
    throw new ManagerError(
      "invalid_field",
      `nothing to change: send at least one of ${WEBHOOK_FIELDS.join(", ")}`,
      "body",
    );
  }
  // The URL itself is checked by the manager (length, then the SSRF rules); only its presence here.
  if (creating && input.url === undefined) {
    throw new ManagerError(
      "invalid_field",
      "url is required: the http(s) URL that receives the events",
      "url",
    );
  }
  const out: CheckedFields = {};
  if (input.events !== undefined || creating) out.events = checkEvents(input.events);
  const name = optionalText(input.name, "name", LIMITS.name);
  if (name !== undefined) out.name = name;
  const description = optionalText(input.description, "description", LIMITS.description);
  if (description !== undefined) out.description = description;
  if (input.metadata !== undefined) out.metadata = checkMetadata(input.metadata);
  if (input.retry_schedule !== undefined) out.retrySchedule = checkSchedule(input.retry_schedule);
  if (input.active !== undefined) {
    if (typeof input.active !== "boolean")
      throw new ManagerError("invalid_field", "active must be true or false", "active");
    out.active = input.active;
  }
  return out;
}

function checkMetadata(m: unknown): Record<string, unknown> | null {
  if (m === null) return null;
  if (typeof m !== "object" || Array.isArray(m)) {
    throw new ManagerError(
      "invalid_field",
      "metadata must be a JSON object, or null to clear it",
      "metadata",
    );
  }
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(m));
  } catch {
    // Nested past the stack (thousands of levels): far over the limit, whatever its size.
    bytes = Number.POSITIVE_INFINITY;
  }
  if (bytes > LIMITS.metadata) {
    throw new ManagerError(
      "invalid_field",
      `metadata must be at most ${LIMITS.metadata} bytes as JSON; this one is ${Number.isFinite(bytes) ? bytes : "more"}`,
      "metadata",
    );
  }
  const unstorable = unstorablePath(m, "metadata");
  if (unstorable !== null)
    throw new ManagerError("invalid_field", `${unstorable} ${UNSTORABLE_TEXT}`, unstorable);
  return m as Record<string, unknown>;
}

function checkSchedule(s: unknown): number[] | null {
  if (s === null) return null;
  if (!Array.isArray(s) || s.length === 0 || s.length > LIMITS.schedule) {
    throw new ManagerError(
      "invalid_field",
      `retry_schedule must list 1 to ${LIMITS.schedule} delays such as "1s" or "5m", or be null for the default`,
      "retry_schedule",
    );
  }
  return s.map((d, i) => {
    const ms = typeof d === "number" ? d : typeof d === "string" ? parseDuration(d) : null;
    const field = `retry_schedule[${i}]`;
    if (ms === null || !Number.isInteger(ms) || ms < 0) {
      throw new ManagerError(
        "invalid_field",
        `${field}: ${JSON.stringify(d)} is not a delay: write "500ms", "30s", "5m" or "2h" (a JSON number counts milliseconds)`,
        field,
      );
    }
    if (ms > LIMITS.delay) {
      throw new ManagerError(
        "invalid_field",
        `${field}: ${JSON.stringify(d)} is over the 24h maximum`,
        field,
      );
    }
    return ms;
  });
}
