/**
 * An event's payload is stored once, on its `webhook_events` row, instead of once per delivery
 * (CONTRACT §2): `webhook_deliveries.payload` becomes nullable and holds a body only for a
 * delivery without an event row (the test send). Reads join the event (store/common.ts
 * DELIVERY_FROM). Rows written before this migration keep theirs where the event row is gone.
 * `idx_deliveries_event_id` lets the retention purge keep an event while a delivery needs it.
 */
import type { DialectSql } from "./index.js";

export const payloadOnce: DialectSql = {
  // SQLite cannot drop NOT NULL in place: move the column (DROP COLUMN rewrites the table).
  sqlite: [
    "ALTER TABLE webhook_deliveries ADD COLUMN own_payload TEXT",
    `UPDATE webhook_deliveries SET own_payload = payload
     WHERE event_id IS NULL OR event_id NOT IN (SELECT id FROM webhook_events)`,
    "ALTER TABLE webhook_deliveries DROP COLUMN payload",
    "ALTER TABLE webhook_deliveries RENAME COLUMN own_payload TO payload",
    "CREATE INDEX idx_deliveries_event_id ON webhook_deliveries (event_id) WHERE event_id IS NOT NULL",
  ],
  postgres: [
    "ALTER TABLE webhook_deliveries ALTER COLUMN payload DROP NOT NULL",
    `UPDATE webhook_deliveries d SET payload = NULL
     WHERE EXISTS (SELECT 1 FROM webhook_events e WHERE e.id = d.event_id)`,
    "CREATE INDEX idx_deliveries_event_id ON webhook_deliveries (event_id) WHERE event_id IS NOT NULL",
  ],
};
