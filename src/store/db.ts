import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
import SQLite from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import type pg from "pg";
import type { Database } from "./schema.js";

export type Dialect = "sqlite" | "postgres";

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
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /**
   * The driver under Kysely, for the hot paths (emit, claim, record outcome) where Kysely's
   * per-query compilation would cost more than the query. In SQLite, multi-statement
   * transactions must use `sqlite.transaction()` (synchronous), never Kysely's
   * `db.transaction()`: an await inside one would let other statements run inside it.
   */
  readonly raw: { kind: "sqlite"; sqlite: SQLite.Database } | { kind: "postgres"; pool: pg.Pool };
  /** Where the data lives, without credentials: for logs and health output. */
  readonly location: string;
  /** Booleans as the dialect stores them (better-sqlite3 cannot bind JS booleans). */
  bool(value: boolean): number | boolean;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

export function toBool(value: number | boolean | null | undefined): boolean {
  return value === true || value === 1;
}

export function openStore(options: StoreOptions): Store {
  if (options.databaseUrl && isPostgresUrl(options.databaseUrl)) {
    return openPostgres(options.databaseUrl, options);
  }
  return openSqlite(
    options.sqlitePath ?? "./data/continuum-webhooks.db",
    options.backgroundCheckpoint ?? false,
  );
}

/**
 * With autocheckpoint, the commit that fills the WAL copies it into the database file, stalling
 * that commit (and the whole event loop) for milliseconds: it was the whole of emit()'s p99.
 * A thread checkpoints instead, a few times a second, without blocking writers.
 */
const CHECKPOINTER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 1000");
const timer = setInterval(() => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
}, workerData.intervalMs);
parentPort.on("message", () => { clearInterval(timer); db.close(); process.exit(0); });
`;

function startCheckpointer(sqlite: SQLite.Database, path: string): () => Promise<void> {
  const module = requireCjs.resolve("better-sqlite3");
  const worker = new Worker(CHECKPOINTER, { eval: true, workerData: { module, path, intervalMs: 250 } });
  worker.unref();
  sqlite.pragma("wal_autocheckpoint = 0");
  // Should the thread die, SQLite's own checkpointing takes over again.
  worker.on("error", () => sqlite.pragma("wal_autocheckpoint = 1000"));
  return async () => {
    const exited = new Promise((r) => worker.once("exit", r));
    worker.postMessage("stop");
    await exited;
  };
}

function openSqlite(path: string, backgroundCheckpoint: boolean): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new SQLite(path);
  sqlite.pragma("journal_mode = WAL");
  // NORMAL in WAL mode survives any process crash (SIGKILL included); only an OS crash or power
  // loss can drop the last commits. FULL would fsync every commit and cost ~5x on emit latency.
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("busy_timeout = 5000");
  const stopCheckpointer =
    backgroundCheckpoint && path !== ":memory:" ? startCheckpointer(sqlite, path) : null;
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  let closed: Promise<void> | undefined;
  return {
    db,
    dialect: "sqlite",
    raw: { kind: "sqlite", sqlite },
    location: `sqlite:${path}`,
    bool: (v) => (v ? 1 : 0),
    async ping() {
      await sql`select 1`.execute(db);
    },
    close() {
      closed ??= (async () => {
        await stopCheckpointer?.();
        await db.destroy();
      })();
      return closed;
    },
  };
}

const TIMESTAMPTZ = 1184;
const TIMESTAMP = 1114;
const INT8 = 20;
const NUMERIC = 1700;
const JSON_OID = 114;
const JSONB = 3802;

const requireCjs = createRequire(import.meta.url);

/**
 * The pg driver, loaded on first use: the embedded mode never needs it, and every megabyte of
 * an idle process counts when many run side by side.
 */
export function loadPg(): typeof import("pg") {
  return requireCjs("pg") as typeof import("pg");
}

/** Per-pool type parsers (not the global pg.types) so two stores in one process never interfere. */
function pgTypes(types: typeof pg.types): pg.CustomTypesConfig {
  return {
    getTypeParser(oid: number, format?: "text" | "binary") {
      if (oid === TIMESTAMPTZ || oid === TIMESTAMP) {
        const parse = types.getTypeParser(oid, "text") as (v: string) => Date;
        return (v: string) => parse(v).toISOString();
      }
      if (oid === INT8 || oid === NUMERIC) return (v: string) => Number(v);
      if (oid === JSON_OID || oid === JSONB) return (v: string) => v;
      return types.getTypeParser(oid, format ?? "text");
    },
  } as pg.CustomTypesConfig;
}

function openPostgres(url: string, options: StoreOptions): Store {
  const pg = loadPg();
  const pool = new pg.Pool({
    connectionString: url,
    max: options.pgPoolSize ?? 10,
    types: pgTypes(pg.types),
    options: pgStartupOptions(url, options.pgSchema),
    connectionTimeoutMillis: 5000,
  });
  // A client that loses its server emits 'error' (on the pool when idle, on the client itself
  // otherwise); unhandled, either would crash the process. The query in flight fails on its own
  // and the pool replaces the dead client, so nothing else needs doing here.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let closed: Promise<void> | undefined;
  return {
    db,
    dialect: "postgres",
    raw: { kind: "postgres", pool },
    location: redactUrl(url),
    bool: (v) => v,
    async ping() {
      await sql`select 1`.execute(db);
    },
    close() {
      closed ??= db.destroy();
      return closed;
    },
  };
}

/**
 * Our session settings, added to any `?options=` the URL already carries (that is how an operator,
 * or a test, picks a schema with `-c search_path=...`): the Pool's `options` would replace them.
 */
function pgStartupOptions(url: string, schema: string | undefined): string {
  let fromUrl = "";
  try {
    fromUrl = new URL(url).searchParams.get("options") ?? "";
  } catch {
    // pg reports a malformed URL itself, with a better message.
  }
  return [fromUrl, "-c TimeZone=UTC", schema ? `-c search_path=${schema}` : ""].filter(Boolean).join(" ");
}

/** Strip credentials from a connection URL before it is shown anywhere. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
