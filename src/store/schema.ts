/**
 * The tables as Kysely sees them: for the migrations and for tests that inspect state. Both
 * dialects are normalised by the driver setup (store/postgres/index.ts): timestamps come back as
 * ISO 8601 strings, JSON columns as their text, counts as numbers. `active` is 0/1 in SQLite and
 * a boolean in PostgreSQL.
 */
import type { Generated } from "kysely";
import type { ApiKeyRole, BreakerState, DeliveryStatus, Priority } from "../models.js";

export interface WebhooksTable {
  id: string;
  user_id: string;
  url: string;
  secret: string;
  events: string;
  active: number | boolean;
  created_at: string;
  updated_at: string;
  failure_count: Generated<number>;
  last_triggered_at: string | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  metadata: string | null;
  name: string | null;
  description: string | null;
  previous_secret: string | null;
  previous_secret_expires_at: string | null;
  retry_schedule: string | null;
  breaker_state: Generated<BreakerState>;
  breaker_opened_at: string | null;
  disabled_reason: string | null;
}

export interface EventsTable {
  id: string;
  user_id: string;
  event: string;
  payload: string;
  priority: Priority;
  idempotency_key: string | null;
  delivery_count: number;
  created_at: string;
}

export interface DeliveriesTable {
  id: string;
  webhook_id: string;
  event_id: string | null;
  event: string;
  /** NULL when the event row holds it (every emitted delivery since migration 003). */
  payload: string | null;
  status: DeliveryStatus;
  priority: number;
  attempts: Generated<number>;
  next_retry_at: string | null;
  response_code: number | null;
  response_body: string | null;
  duration_ms: Generated<number>;
  created_at: string;
  completed_at: string | null;
  error_message: string | null;
  lease_owner: string | null;
  lease_until: string | null;
}

export interface AttemptsTable {
  delivery_id: string;
  attempt: number;
  webhook_id: string;
  attempted_at: string;
  response_code: number | null;
  duration_ms: number;
  error_type: string | null;
  error_message: string | null;
}

export interface ApiKeysTable {
  id: string;
  key_hash: string;
  key_prefix: string;
  user_id: string;
  role: ApiKeyRole;
  name: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface WorkerHeartbeatsTable {
  owner: string;
  expires_at: string;
}

export interface Database {
  webhooks: WebhooksTable;
  webhook_events: EventsTable;
  webhook_deliveries: DeliveriesTable;
  webhook_delivery_attempts: AttemptsTable;
  api_keys: ApiKeysTable;
  worker_heartbeats: WorkerHeartbeatsTable;
}
