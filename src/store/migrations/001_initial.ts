/**
 * The schema of CONTRACT §2. SQLite stores timestamps as ISO 8601 text (which sorts correctly) and
 * JSON as text; PostgreSQL uses TIMESTAMPTZ and JSONB. Column names are part of the contract.
 */
import type { DialectSql } from "./index.js";

const sqlite = [
  `CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    failure_count INTEGER NOT NULL DEFAULT 0,
    last_triggered_at TEXT,
    last_success_at TEXT,
    last_failure_at TEXT,
    metadata TEXT,
    name TEXT,
    description TEXT,
    previous_secret TEXT,
    previous_secret_expires_at TEXT,
    retry_schedule TEXT,
    breaker_state TEXT NOT NULL DEFAULT 'closed',
    breaker_opened_at TEXT,
    disabled_reason TEXT,
    UNIQUE (user_id, url)
  )`,
  `CREATE INDEX idx_webhooks_user_id ON webhooks (user_id)`,
  `CREATE INDEX idx_webhooks_user_active ON webhooks (user_id, active)`,
  `CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority TEXT NOT NULL,
    idempotency_key TEXT,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
  )`,
  `CREATE UNIQUE INDEX idx_events_idempotency ON webhook_events (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL`,
  `CREATE INDEX idx_events_created_at ON webhook_events (created_at)`,
  `CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id TEXT,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'success', 'failed', 'dead_letter')),
    priority INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at TEXT,
    response_code INTEGER,
    response_body TEXT,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    error_message TEXT,
    lease_owner TEXT,
    lease_until TEXT
  )`,
  `CREATE INDEX idx_deliveries_webhook_id ON webhook_deliveries (webhook_id, id)`,
  `CREATE INDEX idx_deliveries_status ON webhook_deliveries (status)`,
  // The queue: work still to do (pending, or failed with a retry scheduled), per webhook, by
  // priority then due time. Partial, so it stays as small as the backlog however large the
  // history grows; per webhook, so a saturated webhook's backlog is never scanned to reach
  // another's.
  `CREATE INDEX idx_deliveries_next_retry ON webhook_deliveries (webhook_id, priority, next_retry_at)
    WHERE status IN ('pending', 'failed') AND next_retry_at IS NOT NULL`,
  `CREATE INDEX idx_deliveries_created_at ON webhook_deliveries (created_at)`,
  `CREATE TABLE webhook_delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    response_code INTEGER,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    error_type TEXT,
    error_message TEXT,
    PRIMARY KEY (delivery_id, attempt)
  )`,
  `CREATE INDEX idx_attempts_webhook_time ON webhook_delivery_attempts (webhook_id, attempted_at)`,
  `CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    name TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
  )`,
  // Embedded mode: one process at a time delivers from a SQLite file (see queue/sql-queue.ts).
  `CREATE TABLE engine_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL,
    expires_at TEXT NOT NULL
  )`,
];

const postgres = [
  `CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    failure_count INTEGER NOT NULL DEFAULT 0,
    last_triggered_at TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    last_failure_at TIMESTAMPTZ,
    metadata JSONB,
    name TEXT,
    description TEXT,
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    retry_schedule TEXT,
    breaker_state TEXT NOT NULL DEFAULT 'closed',
    breaker_opened_at TIMESTAMPTZ,
    disabled_reason TEXT,
    UNIQUE (user_id, url)
  )`,
  `CREATE INDEX idx_webhooks_user_id ON webhooks (user_id)`,
  `CREATE INDEX idx_webhooks_user_active ON webhooks (user_id, active)`,
  `CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload JSONB NOT NULL,
    priority TEXT NOT NULL,
    idempotency_key TEXT,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
  )`,
  `CREATE UNIQUE INDEX idx_events_idempotency ON webhook_events (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL`,
  `CREATE INDEX idx_events_created_at ON webhook_events (created_at)`,
  `CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id TEXT,
    event TEXT NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'success', 'failed', 'dead_letter')),
    priority SMALLINT NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at TIMESTAMPTZ,
    response_code INTEGER,
    response_body TEXT,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    error_message TEXT,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ
  )`,
  `CREATE INDEX idx_deliveries_webhook_id ON webhook_deliveries (webhook_id, id)`,
  `CREATE INDEX idx_deliveries_status ON webhook_deliveries (status)`,
  `CREATE INDEX idx_deliveries_next_retry ON webhook_deliveries (webhook_id, priority, next_retry_at)
    WHERE status IN ('pending', 'failed') AND next_retry_at IS NOT NULL`,
  `CREATE INDEX idx_deliveries_created_at ON webhook_deliveries (created_at)`,
  // What is in flight, per webhook: the per-webhook concurrency limit counts it on every claim.
  `CREATE INDEX idx_deliveries_leased ON webhook_deliveries (webhook_id) WHERE lease_owner IS NOT NULL`,
  `CREATE TABLE webhook_delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL,
    response_code INTEGER,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    error_type TEXT,
    error_message TEXT,
    PRIMARY KEY (delivery_id, attempt)
  )`,
  `CREATE INDEX idx_attempts_webhook_time ON webhook_delivery_attempts (webhook_id, attempted_at)`,
  `CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    name TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
  )`,
];

export const initial: DialectSql = { sqlite, postgres };
