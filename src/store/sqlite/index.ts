/**
 * The embedded backend: one SQLite file through better-sqlite3. Every statement on its tables is
 * in this folder; Kysely over the same handle serves only the migrations and tests.
 */
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
import SQLite from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { Database } from "../schema.js";
import type { SqliteStore } from "../types.js";
import { sqliteApiKeys } from "./api-keys.js";
import { sqliteDeliveries } from "./deliveries.js";
import { sqliteEngine } from "./engine.js";
import { sqliteQueueStatements } from "./queue.js";
import { sqliteWebhooks } from "./webhooks.js";
import { sqliteWorkers } from "./workers.js";

const requireCjs = createRequire(import.meta.url);

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
    // Unref'd while it runs, so it never keeps a process alive; while it stops, it must, or a
    // process with nothing else left exits in the middle of close() (exit code 13).
    worker.ref();
    worker.postMessage("stop");
    await exited;
  };
}

export function openSqliteStore(path: string, backgroundCheckpoint: boolean): SqliteStore {
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
  const ping = sqlite.prepare("SELECT 1");
  // Statements are prepared on first use: the tables exist only once the migrations ran.
  let parts:
    | Pick<SqliteStore, "webhooks" | "deliveries" | "apiKeys" | "engine" | "workers" | "queue">
    | undefined;
  const prepared = () => {
    parts ??= {
      webhooks: sqliteWebhooks(sqlite),
      deliveries: sqliteDeliveries(sqlite),
      apiKeys: sqliteApiKeys(sqlite),
      engine: sqliteEngine(sqlite),
      workers: sqliteWorkers(sqlite),
      queue: sqliteQueueStatements(sqlite),
    };
    return parts;
  };
  let closed: Promise<void> | undefined;
  return {
    dialect: "sqlite",
    location: `sqlite:${path}`,
    db,
    sqlite,
    get webhooks() {
      return prepared().webhooks;
    },
    get deliveries() {
      return prepared().deliveries;
    },
    get apiKeys() {
      return prepared().apiKeys;
    },
    get engine() {
      return prepared().engine;
    },
    get workers() {
      return prepared().workers;
    },
    get queue() {
      return prepared().queue;
    },
    async ping() {
      ping.get();
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
