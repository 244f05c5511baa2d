/**
 * An event's payload is stored once, on its `webhook_events` row, instead of once per delivery
 * (CONTRACT §2): `webhook_deliveries.payload` becomes nullable and holds a body only for a
 * delivery without an event row (the test send). Reads join the event (store/common.ts
 * DELIVERY_FROM) and prefer a delivery's own copy, so rows written before this migration read
 * back as they were. `idx_deliveries_event_id` lets the retention purge keep an event while a
 * delivery needs it.
 *
 * Stop every process of an older release before this runs: an older worker reads only the
 * delivery's own column and would find nothing to send for deliveries emitted after it.
 */
import type { DialectSql } from "./index.js";

export const payloadOnce: DialectSql = {
  // SQLite cannot drop NOT NULL in place: the column is moved (DROP COLUMN rewrites the table).
  // Kysely does not wrap SQLite migrations in a transaction, so this one does, taking the write
  // lock first: a process killed half-way leaves the table as it was, and a run repeats cleanly.
  sqlite: [
    "BEGIN IMMEDIATE",
    "ALTER TABLE webhook_deliveries ADD COLUMN own_payload TEXT",
    `UPDATE webhook_deliveries SET own_payload = payload
     WHERE event_id IS NULL OR event_id NOT IN (SELECT id FROM webhook_events)`,
    "ALTER TABLE webhook_deliveries DROP COLUMN payload",
    "ALTER TABLE webhook_deliveries RENAME COLUMN own_payload TO payload",
    "CREATE INDEX idx_deliveries_event_id ON webhook_deliveries (event_id) WHERE event_id IS NOT NULL",
    "COMMIT",
  ],
  // Dropping NOT NULL only changes the catalogue. The copies already stored stay (the reads
  // prefer them, and the retention purge removes them with their rows): clearing them here would
  // rewrite the whole table inside the migration's transaction, holding its lock all along.
  // Building the index does hold a write lock on the table while it runs.
  postgres: [
    "ALTER TABLE webhook_deliveries ALTER COLUMN payload DROP NOT NULL",
    "CREATE INDEX idx_deliveries_event_id ON webhook_deliveries (event_id) WHERE event_id IS NOT NULL",
  ],
};
