/**
 * TypeBox schemas: the single source of handler types and the OpenAPI document, and of the
 * request validation the API does itself. Named schemas carry an `$id`; routes point at them with
 * `ref()` so the OpenAPI document shows them once under `components.schemas` instead of inlining
 * copies.
 *
 * Each rule has one owner. The values the library checks anyway (the manager and the emitter are
 * a library too) are marked `libraryChecked`: the document shows them, with the owner's numbers,
 * but the request validator leaves them to the library (validation.ts), so a mistake answers the
 * same status, code and reason whether it came over HTTP or through a library call.
 */
import { type Static, type TSchema, type TUnsafe, Type } from "typebox";
import { MAX_BATCH, MAX_BODY_BYTES } from "../emitter.js";
import { EVENT_TYPES } from "../events.js";
import { LIMITS } from "../manager-input.js";
import { LIBRARY_CHECKED } from "./validation.js";

const named = new Map<string, TSchema>();

/** Registers a schema under a component name (its `$id`). */
function define<T extends TSchema>(id: string, schema: T): T {
  const s = Object.assign(schema, { $id: id });
  named.set(id, s);
  return s;
}

/** Every named schema, for `app.addSchema` and for the validators. */
export function namedSchemas(): TSchema[] {
  return [...named.values()];
}

/** A `$ref` to a named schema that keeps the schema's static type for the handlers. */
export function ref<T extends TSchema>(schema: T): TUnsafe<Static<T>> {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== "string") throw new Error("ref() needs a schema created with define()");
  return Type.Unsafe<Static<T>>({ $ref: `${id}#` });
}

/**
 * A schema whose values the library checks (manager-input.ts, manager.ts, emitter.ts): documented
 * here, enforced there. On an object, everything under it is the library's except which fields
 * exist, which the API still refuses with a suggestion.
 */
function libraryChecked<T extends TSchema>(schema: T): T {
  return Object.assign(schema, { [LIBRARY_CHECKED]: true });
}

/** `T | null` as one JSON Schema type list: one clear validation error instead of an anyOf cascade. */
function nullable<T extends TSchema>(
  schema: T,
  options: Record<string, unknown> = {},
): TUnsafe<Static<T> | null> {
  const type = (schema as { type?: unknown }).type;
  if (typeof type !== "string") throw new Error("nullable() needs a schema with a single type");
  return Type.Unsafe<Static<T> | null>({ ...schema, ...options, type: [type, "null"] });
}

/**
 * An enumerated string in responses. Typed as plain `string` because the views (views.ts) are,
 * while the document still lists the values.
 */
function oneOf(values: readonly string[]): TUnsafe<string> {
  return Type.Unsafe<string>({ type: "string", enum: [...values] });
}

const Timestamp = Type.String({ format: "date-time", description: "ISO 8601, UTC" });
const NullableTimestamp = nullable(Type.String({ format: "date-time" }));
const Metadata = Type.Record(Type.String(), Type.Unknown(), {
  description: `Free-form JSON object stored with the webhook (at most ${LIMITS.metadata} bytes serialized)`,
});
/** 1 to 255 characters, no control characters: the emitter's rule (`isLabel`) for user ids and idempotency keys. */
const label = (description: string) =>
  Type.String({
    minLength: 1,
    maxLength: 255,
    pattern: "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
    description,
  });

export const ID_PATTERNS = {
  webhook: "^whk_[0-9A-HJKMNP-TV-Z]{26}$",
  delivery: "^dlv_[0-9A-HJKMNP-TV-Z]{26}$",
  event: "^evt_[0-9A-HJKMNP-TV-Z]{26}$",
} as const;

/** Each kind of id, for messages that describe an id's shape in words. */
export const ID_KINDS = [
  { prefix: "whk", noun: "webhook", pattern: ID_PATTERNS.webhook },
  { prefix: "dlv", noun: "delivery", pattern: ID_PATTERNS.delivery },
  { prefix: "evt", noun: "event", pattern: ID_PATTERNS.event },
] as const;

const EVENT_LIST = EVENT_TYPES.join(", ");

// ----------------------------------------------------------------------------------------------
// Problems
// ----------------------------------------------------------------------------------------------

export const Problem = define(
  "Problem",
  Type.Object(
    {
      type: Type.String({ description: "URI naming the kind of problem" }),
      title: Type.String(),
      status: Type.Integer(),
      detail: Type.String(),
      errors: Type.Optional(
        Type.Array(Type.Object({ field: Type.String(), reason: Type.String() }), {
          description: "Field-level reasons, when the request body or query was at fault",
        }),
      ),
    },
    { description: "RFC 9457 problem details (`application/problem+json`)" },
  ),
);

// ----------------------------------------------------------------------------------------------
// Webhooks
// ----------------------------------------------------------------------------------------------

const webhookFields = {
  url: Type.String({
    minLength: 1,
    maxLength: LIMITS.url,
    description:
      "http(s) URL; HTTPS only in production; ports 80, 443, 8080, 8443; private, loopback and metadata addresses are refused",
  }),
  events: Type.Array(oneOf(["*", ...EVENT_TYPES]), {
    minItems: 1,
    maxItems: LIMITS.events,
    description: `Event types to receive, or "*" for all: ${EVENT_LIST}`,
  }),
  name: nullable(Type.String({ maxLength: LIMITS.name })),
  description: nullable(Type.String({ maxLength: LIMITS.description })),
  metadata: nullable(Metadata),
  retry_schedule: nullable(
    Type.Array(Type.Unsafe<string | number>({ type: ["string", "integer"], minimum: 0 }), {
      minItems: 1,
      maxItems: LIMITS.schedule,
    }),
    {
      description:
        'This webhook\'s own delays between attempts ("1s", "5m" or milliseconds, each at most 24h); null for the default',
    },
  ),
  active: Type.Boolean(),
};

export const CreateWebhookRequest = define(
  "CreateWebhookRequest",
  libraryChecked(
    Type.Object(
      {
        url: webhookFields.url,
        events: webhookFields.events,
        name: Type.Optional(webhookFields.name),
        description: Type.Optional(webhookFields.description),
        metadata: Type.Optional(webhookFields.metadata),
        retry_schedule: Type.Optional(webhookFields.retry_schedule),
        active: Type.Optional(webhookFields.active),
        user_id: Type.Optional(
          label(
            "The user who owns the webhook: required with an admin key; a user key may omit it or name its own user",
          ),
        ),
      },
      { additionalProperties: false },
    ),
  ),
);

export const UpdateWebhookRequest = define(
  "UpdateWebhookRequest",
  libraryChecked(
    Type.Object(
      {
        url: Type.Optional(webhookFields.url),
        events: Type.Optional(webhookFields.events),
        name: Type.Optional(webhookFields.name),
        description: Type.Optional(webhookFields.description),
        metadata: Type.Optional(webhookFields.metadata),
        retry_schedule: Type.Optional(webhookFields.retry_schedule),
        active: Type.Optional(Type.Boolean({ description: "false pauses deliveries" })),
      },
      { additionalProperties: false, minProperties: 1 },
    ),
  ),
);

export const WebhookResponse = define(
  "WebhookResponse",
  Type.Object({
    id: Type.String({ pattern: ID_PATTERNS.webhook }),
    user_id: Type.String(),
    url: Type.String(),
    events: Type.Array(Type.String()),
    active: Type.Boolean(),
    name: nullable(Type.String()),
    description: nullable(Type.String()),
    metadata: nullable(Metadata),
    retry_schedule: nullable(Type.Array(Type.String())),
    secret: Type.String({
      description:
        "Masked (`whsec_abcd…`), except in the answers to create and rotate-secret, which show it whole once",
    }),
    previous_secret_expires_at: NullableTimestamp,
    failure_count: Type.Integer(),
    last_triggered_at: NullableTimestamp,
    last_success_at: NullableTimestamp,
    last_failure_at: NullableTimestamp,
    circuit_breaker: Type.Object({
      state: oneOf(["closed", "open", "half_open"]),
      opened_at: NullableTimestamp,
    }),
    disabled_reason: nullable(Type.String()),
    created_at: Timestamp,
    updated_at: Timestamp,
  }),
);

export const WebhookListResponse = define(
  "WebhookListResponse",
  Type.Object({
    data: Type.Array(ref(WebhookResponse)),
    next_cursor: nullable(Type.String(), {
      description: "Pass as `cursor` for the next page; null on the last",
    }),
  }),
);

export const TestWebhookResponse = define(
  "TestWebhookResponse",
  Type.Object({
    delivery_id: Type.String({ pattern: ID_PATTERNS.delivery }),
    success: Type.Boolean(),
    status_code: nullable(Type.Integer()),
    duration_ms: Type.Number(),
    error: nullable(Type.String()),
  }),
);

// ----------------------------------------------------------------------------------------------
// Deliveries
// ----------------------------------------------------------------------------------------------

const DELIVERY_STATUSES = ["pending", "success", "failed", "dead_letter"] as const;

const deliveryFields = {
  id: Type.String({ pattern: ID_PATTERNS.delivery }),
  webhook_id: Type.String({ pattern: ID_PATTERNS.webhook }),
  event_id: nullable(Type.String()),
  event: Type.String(),
  status: oneOf(DELIVERY_STATUSES),
  attempts: Type.Integer(),
  next_retry_at: NullableTimestamp,
  response_code: nullable(Type.Integer()),
  response_body: nullable(Type.String({ description: "Truncated" })),
  duration_ms: Type.Number(),
  error_message: nullable(Type.String()),
  created_at: Timestamp,
  completed_at: NullableTimestamp,
};

export const DeliveryResponse = define("DeliveryResponse", Type.Object(deliveryFields));

export const DeliveryListResponse = define(
  "DeliveryListResponse",
  Type.Object({
    data: Type.Array(ref(DeliveryResponse)),
    next_cursor: nullable(Type.String()),
  }),
);

export const AttemptResponse = define(
  "AttemptResponse",
  Type.Object({
    attempt: Type.Integer(),
    attempted_at: Timestamp,
    response_code: nullable(Type.Integer()),
    duration_ms: Type.Number(),
    error_type: nullable(Type.String()),
    error_message: nullable(Type.String()),
  }),
);

export const DeliveryDetailResponse = define(
  "DeliveryDetailResponse",
  Type.Object({
    ...deliveryFields,
    payload: Type.Unknown({
      description: "The envelope as sent to the receiver; null when its event row is gone",
    }),
    attempt_history: Type.Array(ref(AttemptResponse)),
  }),
);

const WindowStats = define(
  "WindowStats",
  Type.Object({
    total: Type.Integer(),
    by_status: Type.Object({
      pending: Type.Integer(),
      success: Type.Integer(),
      failed: Type.Integer(),
      dead_letter: Type.Integer(),
    }),
    success_rate: nullable(Type.Number({ description: "success / finished deliveries, 0..1" })),
    duration_ms: Type.Object({
      avg: nullable(Type.Number()),
      p50: nullable(Type.Number()),
      p95: nullable(Type.Number()),
    }),
  }),
);

export const StatsResponse = define(
  "StatsResponse",
  Type.Object({
    webhook_id: Type.String({ pattern: ID_PATTERNS.webhook }),
    all_time: ref(WindowStats),
    last_24h: ref(WindowStats),
    last_7d: ref(WindowStats),
  }),
);

// ----------------------------------------------------------------------------------------------
// Events
// ----------------------------------------------------------------------------------------------

export const EmitEventRequest = define(
  "EmitEventRequest",
  libraryChecked(
    Type.Object(
      {
        event: oneOf(EVENT_TYPES),
        user_id: Type.Optional(
          label(
            "The user the event is about: required with an admin key; a user key may omit it or name its own user",
          ),
        ),
        data: Type.Record(Type.String(), Type.Unknown(), {
          description: `The event's fields (see docs/EVENTS.md); the whole event at most ${MAX_BODY_BYTES / 1024} KiB serialized`,
        }),
        priority: Type.Optional(oneOf(["high", "normal", "low"])),
        idempotency_key: Type.Optional(
          label("The same key for the same user within 24 h returns the first result and writes nothing"),
        ),
      },
      { additionalProperties: false },
    ),
  ),
);

export const EmitEventResponse = define(
  "EmitEventResponse",
  Type.Object({
    id: Type.String({ pattern: ID_PATTERNS.event, description: "The event id (evt_…)" }),
    deliveries: Type.Integer({ description: "Deliveries created: one per active subscribed webhook" }),
    duplicate: Type.Boolean({
      description: "True when an earlier request with the same idempotency key answered",
    }),
  }),
);

export const BatchEmitRequest = define(
  "BatchEmitRequest",
  libraryChecked(
    Type.Object(
      { events: Type.Array(ref(EmitEventRequest), { minItems: 1, maxItems: MAX_BATCH }) },
      { additionalProperties: false },
    ),
  ),
);

export const BatchEmitResponse = define(
  "BatchEmitResponse",
  Type.Object({ results: Type.Array(ref(EmitEventResponse)) }),
);

// ----------------------------------------------------------------------------------------------
// Operations
// ----------------------------------------------------------------------------------------------

const QueueDepth = Type.Object({ high: Type.Integer(), normal: Type.Integer(), low: Type.Integer() });

export const HealthResponse = define(
  "HealthResponse",
  Type.Object({
    status: oneOf(["healthy", "degraded", "unhealthy"]),
    running: Type.Boolean(),
    workers: Type.Integer(),
    workers_alive: nullable(
      Type.Integer({ description: "Worker processes whose heartbeat is current (this one included)" }),
    ),
    queue_depth: nullable(QueueDepth),
    worker_stats: Type.Object({
      processed: Type.Integer(),
      successful: Type.Integer(),
      failed: Type.Integer(),
    }),
    reasons: Type.Array(Type.String(), { description: "Why the status is not healthy" }),
    database: Type.Object({
      ok: Type.Boolean(),
      dialect: Type.String(),
      latency_ms: Type.Number(),
      error: Type.Optional(Type.String()),
    }),
    redis: nullable(Type.Object({ ok: Type.Boolean() })),
  }),
);

// ----------------------------------------------------------------------------------------------
// Path and query parameters (not named: OpenAPI lists them per operation)
// ----------------------------------------------------------------------------------------------

export const WebhookParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERNS.webhook, description: "Webhook id (whk_…)" }),
});

export const DeliveryParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERNS.webhook, description: "Webhook id (whk_…)" }),
  delivery_id: Type.String({ pattern: ID_PATTERNS.delivery, description: "Delivery id (dlv_…)" }),
});

const pageQuery = {
  limit: Type.Optional(
    libraryChecked(Type.Integer({ minimum: 1, maximum: LIMITS.pageSize, default: LIMITS.defaultPageSize })),
  ),
  cursor: Type.Optional(
    libraryChecked(
      Type.String({
        minLength: 1,
        maxLength: LIMITS.cursor,
        description: "`next_cursor` from the previous page",
      }),
    ),
  ),
};

export const ListWebhooksQuery = Type.Object({
  ...pageQuery,
  user_id: Type.Optional(
    libraryChecked(label("Admin keys only: list this user's webhooks (default: everyone's)")),
  ),
});

export const ListDeliveriesQuery = Type.Object({
  ...pageQuery,
  status: Type.Optional(libraryChecked(oneOf(DELIVERY_STATUSES))),
  event: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  since: Type.Optional(Type.String({ format: "date-time", description: "Created at or after (ISO 8601)" })),
  until: Type.Optional(Type.String({ format: "date-time", description: "Created before (ISO 8601)" })),
});

export const EmitHeaders = Type.Object({
  "idempotency-key": Type.Optional(
    libraryChecked(label("Alternative to the body's idempotency_key (they must agree when both are sent)")),
  ),
});
