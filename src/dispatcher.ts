/**
 * One attempt, end to end: sign, send through the SSRF-safe client, classify the answer into
 * the delivery's next state. The caller (the worker) records the result in one write.
 */
import type { Clock } from "./clock.js";
import type { DeliveryClient, DeliveryResult } from "./http-client.js";
import type { WebhookRecord } from "./models.js";
import type { ClaimedDelivery } from "./queue/queue.js";
import { honoursRetryAfter, nextRetryDelay, parseRetryAfter } from "./retry.js";
import { signBody } from "./signer.js";
import type { Outcome } from "./store/types.js";

export interface AttemptResult {
  outcome: Outcome;
  result: DeliveryResult | null;
  /** The endpoint answered 410 Gone: the webhook must be disabled. */
  gone: boolean;
  /** The attempt reached the endpoint (or tried to); false when the webhook was already disabled. */
  attempted: boolean;
}

const MAX_STORED_BODY = 65_536;

/** What a delivery parked behind a disabled webhook says in its history. */
export const PARKED_MESSAGE =
  "the webhook is disabled: this delivery waits and goes out once it is enabled again";
export const MISSING_BODY_MESSAGE =
  "nothing to send: neither the delivery nor its event row holds a payload (the event row is gone)";

/** The secrets to sign with: the current one, and the previous one while its grace period lasts. */
export function activeSecrets(hook: WebhookRecord, now: number): string[] {
  const prev = hook.previousSecret;
  const until = hook.previousSecretExpiresAt;
  if (prev && until && Date.parse(until) > now) return [hook.secret, prev];
  return [hook.secret];
}

export function retrySchedule(hook: WebhookRecord, fallback: readonly number[]): readonly number[] {
  return hook.retrySchedule ?? fallback;
}

export async function attemptDelivery(
  c: ClaimedDelivery,
  hook: WebhookRecord,
  deps: {
    client: DeliveryClient;
    clock: Clock;
    schedule: readonly number[];
    jitter?: number;
    /** Cancels the request: the worker gave the delivery back and will not record this attempt. */
    signal?: AbortSignal;
  },
): Promise<AttemptResult> {
  const { clock } = deps;
  const startedAt = clock.now();
  const base = {
    deliveryId: c.id,
    webhookId: c.webhookId,
    event: c.event,
    priority: c.priority,
    attemptedAt: new Date(startedAt).toISOString(),
  };
  if (!hook.active) {
    return {
      outcome: {
        ...base,
        attempt: c.attempts,
        // Parked: pending without a due time, spending no attempt, until the webhook is enabled
        // again (the manager then makes it due). Nothing acknowledged is dropped by a pause.
        status: "pending",
        nextRetryAt: null,
        responseCode: null,
        responseBody: null,
        durationMs: 0,
        completedAt: null,
        errorType: null,
        errorMessage: PARKED_MESSAGE,
        attempted: false,
      },
      result: null,
      gone: false,
      attempted: false,
    };
  }

  if (c.payload === null) {
    // Nothing to send (the event row was deleted by hand, or written by a release that did not
    // store it): say so once, spending no attempt, rather than sign and send an empty body.
    return {
      outcome: {
        ...base,
        attempt: c.attempts,
        status: "dead_letter",
        nextRetryAt: null,
        responseCode: null,
        responseBody: null,
        durationMs: 0,
        completedAt: base.attemptedAt,
        errorType: null,
        errorMessage: MISSING_BODY_MESSAGE,
        attempted: false,
      },
      result: null,
      gone: false,
      attempted: false,
    };
  }
  const headers = signBody({
    secret: hook.secret,
    secrets: activeSecrets(hook, startedAt),
    body: c.payload,
    deliveryId: c.id,
    timestamp: Math.floor(startedAt / 1000),
    event: c.event,
  });
  // A pool per webhook: webhooks on one host:port never queue for each other's sockets.
  const result = await deps.client.post(hook.url, c.payload, headers, {
    ...(deps.signal ? { signal: deps.signal } : {}),
    pool: hook.id,
  });
  const now = clock.now();
  const attempt = c.attempts + 1;
  const common = {
    ...base,
    attempt,
    responseCode: result.status ?? null,
    responseBody: result.body ? result.body.slice(0, MAX_STORED_BODY) : null,
    durationMs: Math.round(result.durationMs),
    errorType: result.ok ? null : (result.errorType ?? "http_status"),
    attempted: true,
  };
  if (result.ok) {
    return {
      outcome: {
        ...common,
        status: "success",
        nextRetryAt: null,
        completedAt: new Date(now).toISOString(),
        errorMessage: null,
      },
      result,
      gone: false,
      attempted: true,
    };
  }
  const errorMessage = result.error ?? (result.status ? `HTTP ${result.status}` : "delivery failed");
  if (result.status === 410) {
    return {
      outcome: {
        ...common,
        status: "failed",
        nextRetryAt: null,
        completedAt: new Date(now).toISOString(),
        errorMessage: "endpoint answered 410 Gone; the webhook was disabled",
      },
      result,
      gone: true,
      attempted: true,
    };
  }
  const retryAfterMs = honoursRetryAfter(result.status)
    ? parseRetryAfter(result.headers?.["retry-after"], now)
    : null;
  const delay = nextRetryDelay(attempt, deps.schedule, { retryAfterMs, jitter: deps.jitter ?? 0 });
  return {
    outcome: {
      ...common,
      status: delay === null ? "dead_letter" : "failed",
      nextRetryAt: delay === null ? null : new Date(now + delay).toISOString(),
      completedAt: delay === null ? new Date(now).toISOString() : null,
      errorMessage,
    },
    result,
    gone: false,
    attempted: true,
  };
}
