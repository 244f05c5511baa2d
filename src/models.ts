/**
 * The domain's words and records, as the rest of the code sees them: camelCase, booleans as
 * booleans, JSON columns parsed. Every store hands these out (src/store/types.ts), whatever its
 * database keeps on disk, so no caller ever reads a raw row.
 */

export type Priority = "high" | "normal" | "low";
export type DeliveryStatus = "pending" | "success" | "failed" | "dead_letter";
export type BreakerState = "closed" | "open" | "half_open";
export type ApiKeyRole = "user" | "admin";

/** Queue order: lower runs first. */
export const PRIORITY_RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };
export const PRIORITY_NAMES: readonly Priority[] = ["high", "normal", "low"];
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ["pending", "success", "failed", "dead_letter"];

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
  /** The webhook's own schedule in milliseconds; null for the service default. */
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

export interface DeliveryRecord {
  id: string;
  webhookId: string;
  eventId: string | null;
  event: string;
  /** The body as sent: canonical JSON; null when its event row is gone (nothing can be sent). */
  payload: string | null;
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

export interface ApiKeyRecord {
  id: string;
  userId: string;
  role: ApiKeyRole;
  name: string | null;
  /** The first characters of the key: enough to recognise it in a list, useless to an attacker. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}
