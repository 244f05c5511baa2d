/**
 * Opening a store: a postgres:// URL selects PostgreSQL (store/postgres/), anything else SQLite
 * (store/sqlite/). Both implement the one contract in types.ts.
 */
import { openPostgresStore } from "./postgres/index.js";
import { openSqliteStore } from "./sqlite/index.js";
import type { Store } from "./types.js";

export interface StoreOptions {
  /** A postgres:// URL selects PostgreSQL; otherwise SQLite at `sqlitePath`. */
  databaseUrl?: string | undefined;
  sqlitePath?: string;
  /**
   * SQLite: move WAL checkpoints off the event loop, into a thread with its own connection.
   * For long-running processes (serve, worker); short CLI commands keep SQLite's default.
   */
  backgroundCheckpoint?: boolean;
  /** PostgreSQL schema to use (each test gets its own). Defaults to the server's search_path. */
  pgSchema?: string;
  pgPoolSize?: number;
  /** PostgreSQL: how long a statement may take before its connection counts as dead. */
  pgQueryTimeoutMs?: number;
}

export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

export function openStore(options: StoreOptions): Store {
  if (options.databaseUrl && isPostgresUrl(options.databaseUrl)) {
    return openPostgresStore(options.databaseUrl, {
      ...(options.pgSchema === undefined ? {} : { pgSchema: options.pgSchema }),
      ...(options.pgPoolSize === undefined ? {} : { pgPoolSize: options.pgPoolSize }),
      ...(options.pgQueryTimeoutMs === undefined ? {} : { queryTimeoutMs: options.pgQueryTimeoutMs }),
    });
  }
  return openSqliteStore(
    options.sqlitePath ?? "./data/continuum-webhooks.db",
    options.backgroundCheckpoint ?? false,
  );
}

export { createApiKey, findApiKey, hashApiKey } from "./keys.js";
export { MigrationError, type MigrationOutcome, migrate } from "./migrations/index.js";
export { loadPg, redactUrl } from "./postgres/index.js";
export * from "./types.js";
