/**
 * Checking what a caller asks the manager for: every refusal names the field at fault and
 * changes nothing.
 */
import { parseDuration } from "./duration.js";
import { isSubscription } from "./events.js";
import { isId } from "./ids.js";
import type { WebhookInput } from "./manager.js";

export type ManagerErrorCode = "not_found" | "conflict" | "invalid_url" | "invalid_field" | "invalid_cursor";

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

export const LIMITS = { url: 2048, name: 100, description: 500, metadata: 4096, events: 20, schedule: 20 };

export function encodeCursor(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string, prefix: "whk" | "dlv"): string {
  const id = /^[A-Za-z0-9_-]{1,100}$/.test(cursor) ? Buffer.from(cursor, "base64url").toString("utf8") : "";
  if (!isId(id, prefix))
    throw new ManagerError("invalid_cursor", "cursor is not one this API returned", "cursor");
  return id;
}

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw new ManagerError("invalid_field", "limit must be a whole number from 1 to 100", "limit");
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

function optionalText(v: unknown, field: string, max: number): string | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== "string" || v.length > max) {
    throw new ManagerError("invalid_field", `${field} must be a string of at most ${max} characters`, field);
  }
  return v;
}

export function checkFields(input: Partial<WebhookInput>, creating: boolean): CheckedFields {
  if (typeof input !== "object" || input === null)
    throw new ManagerError("invalid_field", "body must be an object");
  const out: CheckedFields = {};
  if (input.events !== undefined || creating) {
    const ev = input.events;
    if (!Array.isArray(ev) || ev.length === 0 || ev.length > LIMITS.events) {
      throw new ManagerError(
        "invalid_field",
        `events must list 1 to ${LIMITS.events} event types or "*"`,
        "events",
      );
    }
    for (const e of ev) {
      if (!isSubscription(e))
        throw new ManagerError("invalid_field", `unknown event type ${JSON.stringify(e)}`, "events");
    }
    out.events = [...new Set(ev)];
  }
  const name = optionalText(input.name, "name", LIMITS.name);
  if (name !== undefined) out.name = name;
  const description = optionalText(input.description, "description", LIMITS.description);
  if (description !== undefined) out.description = description;
  if (input.metadata !== undefined) {
    const m = input.metadata;
    if (
      m !== null &&
      (typeof m !== "object" || Array.isArray(m) || JSON.stringify(m).length > LIMITS.metadata)
    ) {
      throw new ManagerError(
        "invalid_field",
        `metadata must be a JSON object of at most ${LIMITS.metadata} bytes`,
        "metadata",
      );
    }
    out.metadata = m;
  }
  if (input.retry_schedule !== undefined) out.retrySchedule = checkSchedule(input.retry_schedule);
  if (input.active !== undefined) {
    if (typeof input.active !== "boolean")
      throw new ManagerError("invalid_field", "active must be true or false", "active");
    out.active = input.active;
  }
  return out;
}

function checkSchedule(s: unknown): number[] | null {
  if (s === null) return null;
  const bad = () =>
    new ManagerError(
      "invalid_field",
      `retry_schedule must list 1 to ${LIMITS.schedule} delays such as "1s", "5m" (each at most 24h)`,
      "retry_schedule",
    );
  if (!Array.isArray(s) || s.length === 0 || s.length > LIMITS.schedule) throw bad();
  return s.map((d) => {
    const ms = typeof d === "number" ? d : typeof d === "string" ? parseDuration(d) : null;
    if (ms === null || !Number.isInteger(ms) || ms < 0 || ms > 86_400_000) throw bad();
    return ms;
  });
}
