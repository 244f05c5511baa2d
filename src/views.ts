/**
 * What users see of a record: snake_case, ISO 8601 UTC times, secrets masked. The API returns
 * these as they are.
 */
import { formatDuration } from "./duration.js";
import type { AttemptRecord, BreakerState, DeliveryRecord, DeliveryStatus, WebhookRecord } from "./models.js";
import { maskSecret } from "./signer.js";

export interface WebhookView {
  id: string;
  user_id: string;
  url: string;
  events: string[];
  active: boolean;
  name: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  retry_schedule: string[] | null;
  secret: string;
  previous_secret_expires_at: string | null;
  failure_count: number;
  last_triggered_at: string | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  circuit_breaker: { state: BreakerState; opened_at: string | null };
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

export function webhookView(w: WebhookRecord, now: number): WebhookView {
  const rotating = w.previousSecretExpiresAt !== null && Date.parse(w.previousSecretExpiresAt) > now;
  return {
    id: w.id,
    user_id: w.userId,
    url: w.url,
    events: w.events,
    active: w.active,
    name: w.name,
    description: w.description,
    metadata: w.metadata,
    retry_schedule: w.retrySchedule === null ? null : w.retrySchedule.map(formatDuration),
    secret: maskSecret(w.secret),
    previous_secret_expires_at: rotating ? w.previousSecretExpiresAt : null,
    failure_count: w.failureCount,
    last_triggered_at: w.lastTriggeredAt,
    last_success_at: w.lastSuccessAt,
    last_failure_at: w.lastFailureAt,
    circuit_breaker: { state: w.breakerState, opened_at: w.breakerOpenedAt },
    disabled_reason: w.disabledReason,
    created_at: w.createdAt,
    updated_at: w.updatedAt,
  };
}

export interface DeliveryView {
  id: string;
  webhook_id: string;
  event_id: string | null;
  event: string;
  status: DeliveryStatus;
  attempts: number;
  next_retry_at: string | null;
  response_code: number | null;
  response_body: string | null;
  duration_ms: number;
  error_message: string | null;
  created_at: string;
  completed_at: string | null;
}

/**
 * `notBefore`: the earliest time anything of this webhook can be sent (an open breaker's probe),
 * so a retry that waits behind the breaker shows when it will really be tried.
 */
export function deliveryView(d: DeliveryRecord, notBefore: string | null = null): DeliveryView {
  const scheduled = d.status === "pending" || d.status === "failed" ? d.nextRetryAt : null;
  return {
    id: d.id,
    webhook_id: d.webhookId,
    event_id: d.eventId,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    // While a worker holds the delivery, next_retry_at is its lease; show only real schedules.
    next_retry_at: scheduled !== null && notBefore !== null && notBefore > scheduled ? notBefore : scheduled,
    response_code: d.responseCode,
    response_body: d.responseBody,
    duration_ms: d.durationMs,
    error_message: d.errorMessage,
    created_at: d.createdAt,
    completed_at: d.completedAt,
  };
}

export interface AttemptView {
  attempt: number;
  attempted_at: string;
  response_code: number | null;
  duration_ms: number;
  error_type: string | null;
  error_message: string | null;
}

export function attemptView(a: AttemptRecord): AttemptView {
  return {
    attempt: a.attempt,
    attempted_at: a.attemptedAt,
    response_code: a.responseCode,
    duration_ms: a.durationMs,
    error_type: a.errorType,
    error_message: a.errorMessage,
  };
}
