/**
 * Worker heartbeats, in the database every mode has: an API process without workers of its own
 * (`serve --no-workers`) tells from them whether anything is delivering at all.
 */
import type { DialectSql } from "./index.js";

export const workerHeartbeats: DialectSql = {
  sqlite: [
    `CREATE TABLE worker_heartbeats (
      owner TEXT PRIMARY KEY,
      expires_at TEXT NOT NULL
    )`,
  ],
  postgres: [
    `CREATE TABLE worker_heartbeats (
      owner TEXT PRIMARY KEY,
      expires_at TIMESTAMPTZ NOT NULL
    )`,
  ],
};
