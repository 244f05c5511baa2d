/**
 * The distributed backend: PostgreSQL through a pg Pool. Every statement on its tables is in this
 * folder; Kysely over the same pool serves only the migrations and tests.
 */
import { createRequire } from "node:module";
import { Kysely, PostgresDialect } from "kysely";
import type pg from "pg";
import type { Database } from "../schema.js";
import type { PostgresStore } from "../types.js";
import { pgApiKeys } from "./api-keys.js";
import { pgDeliveries } from "./deliveries.js";
import { pgEngine } from "./engine.js";
import { pgQueueStatements } from "./queue.js";
import { pgWebhooks } from "./webhooks.js";
import { pgWorkers } from "./workers.js";

const requireCjs = createRequire(import.meta.url);

/** No statement of ours runs this long; one that does is on a connection that went silent. */
export const QUERY_TIMEOUT_MS = 15_000;

const TIMESTAMPTZ = 1184;
const TIMESTAMP = 1114;
const INT8 = 20;
const NUMERIC = 1700;
const JSON_OID = 114;
const JSONB = 3802;

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

export function openPostgresStore(
  url: string,
  options: { pgSchema?: string; pgPoolSize?: number; queryTimeoutMs?: number },
): PostgresStore {
  const pg = loadPg();
  const pool = new pg.Pool({
    connectionString: url,
    max: options.pgPoolSize ?? 10,
    types: pgTypes(pg.types),
    options: pgStartupOptions(url, options.pgSchema),
    connectionTimeoutMillis: 5000,
    // A connection that goes silent (no RST: a host crash, a failover, a dropped route) would
    // hold its query — and the worker waiting on it — until TCP gives up, many minutes later.
    // The query fails after QUERY_TIMEOUT_MS instead and its connection is discarded; keepalive
    // probes find dead idle connections.
    query_timeout: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A client that loses its server emits 'error' (on the pool when idle, on the client itself
  // otherwise); unhandled, either would crash the process. The query in flight fails on its own
  // and the pool replaces the dead client, so nothing else needs doing here.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let closed: Promise<void> | undefined;
  return {
    dialect: "postgres",
    location: redactUrl(url),
    db,
    pool,
    webhooks: pgWebhooks(pool),
    deliveries: pgDeliveries(pool),
    apiKeys: pgApiKeys(pool),
    engine: pgEngine(pool),
    workers: pgWorkers(pool),
    queue: pgQueueStatements(pool),
    async ping() {
      await pool.query("SELECT 1");
    },
    close() {
      // Kysely's destroy ends the pool.
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
