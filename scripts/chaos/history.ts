/**
 * Why this exists: the checker must judge a run from a record of what was observed, not from the
 * live objects that observed it, so it can be tested on synthetic histories and cannot "pass by
 * checking nothing". These are the shapes of that record: what the producer sent and was told,
 * how each webhook's subscription changed over time, what every receiver got and answered, the
 * peak concurrency each endpoint saw, and what the database says at the end.
 *
 * Times are Date.now() milliseconds of the campaign process, the only clock the checker trusts.
 */

export type Mode = "embedded" | "postgres" | "redis";

/** What a webhook receives, as far as the emit-time subscription rule goes. */
export interface SubscriptionState {
  active: boolean;
  /** Event types, or "*". */
  events: readonly string[];
  /** Path on its receiver (the receiver's address never changes; a URL PATCH changes the path). */
  path: string;
}

/** A PATCH, from the first send to the answer that confirmed it (retried until it did). */
export interface WebhookChange {
  sentAt: number;
  ackedAt: number;
  to: SubscriptionState;
  /** The fields this PATCH set (the rest of `to` is carried over from the change before it). */
  sets: ReadonlyArray<keyof SubscriptionState>;
  /** For the report: "events → [memory.created]", "disable", "url → /w/a/2". */
  what: string;
}

export interface WebhookHistory {
  /** The campaign's name for it ("a", "b", …); its receiver carries the same name. */
  name: string;
  id: string;
  userId: string;
  secret: string;
  /** State from creation (before the producer starts) until the first change. */
  initial: SubscriptionState;
  changes: WebhookChange[];
}

export interface EmitRecord {
  /** The idempotency key, also carried in the payload as data.chaos_key. */
  key: string;
  userId: string;
  event: string;
  /** When the first attempt was sent. */
  firstSentAt: number;
  /** When the last attempt ended (answer, error or timeout). */
  lastEndedAt: number;
  /** When a 202 was received (null: never acknowledged). */
  ackedAt: number | null;
  /** The event id from the 202. */
  eventId: string | null;
  /** Deliveries the 202 said were created. */
  deliveries: number | null;
  attempts: number;
  /** A 4xx other than 429 (the emit was refused, not retried). */
  refused: string | null;
  lastError: string | null;
  /** The 202 said an earlier attempt had already written it (`duplicate: true`). */
  duplicate: boolean | null;
  /** What the attempts before the 202 got: "500", "429", "timeout", "network error". */
  failedAnswers: string[];
}

export type ReplyKind = "ok" | "slow" | "error" | "hang" | "reset";

export interface Receipt {
  /** The receiver's (= the webhook's) campaign name. */
  webhook: string;
  path: string;
  /** webhook-id / X-Continuum-Delivery. */
  deliveryId: string;
  /** Envelope fields (null when the body did not parse). */
  eventId: string | null;
  event: string | null;
  userId: string | null;
  key: string | null;
  receivedAt: number;
  reply: ReplyKind;
  /** The 2xx answer was written: the event reached the endpoint. */
  delivered: boolean;
  /** Both signatures verified with the webhook's secret. */
  signatureOk: boolean;
  signatureError: string | null;
}

export interface InFlightPeak {
  max: number;
  at: number;
}

export interface DbDelivery {
  id: string;
  webhookId: string;
  eventId: string | null;
  status: string;
  attempts: number;
  nextRetryAt: string | null;
  errorMessage: string | null;
}

export interface DbEvent {
  id: string;
  userId: string;
  event: string;
  idempotencyKey: string | null;
}

export interface DbWebhook {
  id: string;
  active: boolean;
  events: string[];
  url: string;
}

export interface DatabaseView {
  deliveries: DbDelivery[];
  events: DbEvent[];
  webhooks: DbWebhook[];
}

export interface RunHistory {
  mode: Mode;
  /** WEBHOOK_ENDPOINT_CONCURRENCY of every process. */
  limit: number;
  /** Events within this margin of a webhook change are neither expected nor unexpected for it. */
  ambiguityMs: number;
  webhooks: WebhookHistory[];
  emits: EmitRecord[];
  receipts: Receipt[];
  /** By webhook name. */
  inFlight: Record<string, InFlightPeak>;
  db: DatabaseView;
  drain: { drained: boolean; ms: number; lastDepth: number | null; lastWaiting: number | null };
  /** What healing could not do within its bound (empty: everything healed). */
  healProblems: string[];
}
