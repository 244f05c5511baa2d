/**
 * Versioned migrations, applied in order and recorded by Kysely's Migrator in
 * `kysely_migration`. On PostgreSQL the Migrator holds an advisory lock for the whole run, so two
 * processes migrating one database at once serialise; the second finds nothing left to do.
 * A migration is plain SQL per dialect: reviewable, and identical to what runs in production.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from "kysely";
import type { Dialect, Store } from "../types.js";
import { initial } from "./001_initial.js";
import { workerHeartbeats } from "./002_worker_heartbeats.js";
import { payloadOnce } from "./003_payload_once.js";

export interface DialectSql {
  sqlite: string[];
  postgres: string[];
}

/** Append new migrations here; never edit or reorder one that has shipped. */
const MIGRATIONS: ReadonlyArray<readonly [string, DialectSql]> = [
  ["001_initial", initial],
  ["002_worker_heartbeats", workerHeartbeats],
  ["003_payload_once", payloadOnce],
];

function provider(dialect: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [name, statements] of MIGRATIONS) {
        out[name] = {
          async up(db: Kysely<unknown>) {
            try {
              for (const stmt of statements[dialect]) await sql.raw(stmt).execute(db);
            } catch (err) {
              // A SQLite migration that opened its own transaction must not leave it open.
              if (dialect === "sqlite")
                await sql
                  .raw("ROLLBACK")
                  .execute(db)
                  .catch(() => {});
              throw err;
            }
          },
        };
      }
      return out;
    },
  };
}

export interface MigrationOutcome {
  applied: string[];
  total: number;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

/**
 * Kysely's Migrator introspects every schema of the database; another schema dropped at that very
 * moment (a concurrent test, an operator's cleanup) fails it with 3F000 although ours is intact.
 * That is transient: try again.
 */
export async function migrate(store: Store, upTo?: string): Promise<MigrationOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(store, upTo);
    } catch (err) {
      const code =
        (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
      if (code !== "3F000" || attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** `upTo` stops after that migration (to test one against data written by the ones before it). */
async function migrateOnce(store: Store, upTo: string | undefined): Promise<MigrationOutcome> {
  // Kysely looks for its bookkeeping tables in every schema unless told which one: name ours, so
  // a second installation in another schema of the same database is not mistaken for this one.
  const schema =
    store.dialect === "postgres"
      ? (await sql<{ s: string }>`select current_schema() as s`.execute(store.db)).rows[0]?.s
      : undefined;
  const migrator = new Migrator({
    db: store.db,
    provider: provider(store.dialect),
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await (upTo ? migrator.migrateTo(upTo) : migrator.migrateToLatest());
  if (error) {
    const failed = results?.find((r) => r.status === "Error");
    const detail = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`migration ${failed?.migrationName ?? "?"} failed: ${detail}`, { cause: error });
  }
  return {
    applied: (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName),
    total: MIGRATIONS.length,
  };
}
