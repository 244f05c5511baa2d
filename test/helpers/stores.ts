import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newId } from "../../src/ids.js";
import { PRIORITY_RANK, type Priority, type WebhookRecord } from "../../src/models.js";
import { canonicalJson } from "../../src/signer.js";
import {
  type EmitRow,
  type EmitWrite,
  migrate,
  type NewWebhook,
  type Outcome,
  type OutcomeBatch,
  openStore,
  type PostgresStore,
  type SqliteStore,
  type Store,
} from "../../src/store/index.js";
import { createPgSchema, serviceMissing } from "./services.js";

export interface Backend {
  name: "sqlite" | "postgres";
  /** True when this backend's service is not configured and the suite should be skipped. */
  skip: boolean;
  /**
   * A fresh, migrated store and a cleanup that removes every trace of it. `peer()` opens another
   * store on the same data (file / schema), as a second process would; cleanup closes it too.
   */
  open(): Promise<{ store: Store; cleanup(): Promise<void>; peer(): Promise<Store> }>;
}

export const sqliteBackend: Backend = {
  name: "sqlite",
  skip: false,
  async open() {
    const dir = mkdtempSync(join(tmpdir(), "cw-store-"));
    const path = join(dir, "test.db");
    const store = openStore({ sqlitePath: path });
    await migrate(store);
    const peers: Store[] = [];
    return {
      store,
      async peer() {
        const p = openStore({ sqlitePath: path });
        peers.push(p);
        return p;
      },
      async cleanup() {
        for (const p of peers) await p.close();
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

export const postgresBackend: Backend = {
  name: "postgres",
  skip: serviceMissing("TEST_DATABASE_URL"),
  async open() {
    const schema = await createPgSchema();
    const store = openStore({ databaseUrl: schema.url, pgPoolSize: 4 });
    try {
      await migrate(store);
    } catch (err) {
      await store.close();
      await schema.drop();
      throw err;
    }
    const peers: Store[] = [];
    return {
      store,
      async peer() {
        const p = openStore({ databaseUrl: schema.url, pgPoolSize: 4 });
        peers.push(p);
        return p;
      },
      async cleanup() {
        for (const p of peers) await p.close();
        await store.close();
        await schema.drop();
      },
    };
  },
};

export const backends: Backend[] = [sqliteBackend, postgresBackend];

// ---------------------------------------------------------------------------------------------
// Writing state through the Store interface, as production does (for the conformance suites).

export const T0 = Date.parse("2026-11-29T12:00:00.000Z");
/** T0 + `ms`, as the ISO text both backends hand back. */
export const at = (ms = 0): string => new Date(T0 + ms).toISOString();
export const NOW = at(0);
export const SECOND = 1000;
export const DAY = 86_400_000;

export function asSqlite(store: Store): SqliteStore {
  if (store.dialect !== "sqlite") throw new Error("expected a SQLite store");
  return store;
}

export function asPostgres(store: Store): PostgresStore {
  if (store.dialect !== "postgres") throw new Error("expected a PostgreSQL store");
  return store;
}

export function addWebhook(
  store: Store,
  userId: string,
  url: string,
  extra: Partial<Omit<NewWebhook, "userId" | "url">> = {},
): Promise<WebhookRecord> {
  return store.webhooks.insert({
    id: newId("whk"),
    userId,
    url,
    secret: "whsec_x",
    events: ["memory.created"],
    now: NOW,
    ...extra,
  });
}

export interface EmitSpec {
  userId: string;
  event?: string;
  data?: Record<string, unknown>;
  priority?: Priority;
  key?: string | null;
}

/** One event as the emitter builds it: the body is the canonical JSON receivers get. */
export function emitRow(spec: EmitSpec, now: string): EmitRow {
  const eventId = newId("evt");
  const event = spec.event ?? "memory.created";
  const priority = spec.priority ?? "normal";
  return {
    eventId,
    userId: spec.userId,
    event,
    body: canonicalJson({ id: eventId, event, created_at: now, user_id: spec.userId, data: spec.data ?? {} }),
    priority: PRIORITY_RANK[priority],
    priorityName: priority,
    idempotencyKey: spec.key ?? null,
    newDeliveryId: () => newId("dlv"),
  };
}

/** `store.engine.emit` at `now` (default NOW) with the emitter's 24 h idempotency window. */
export async function emit(
  store: Store,
  specs: EmitSpec | EmitSpec[],
  opts: { now?: string; cutoff?: string } = {},
): Promise<EmitWrite[]> {
  const now = opts.now ?? NOW;
  const rows = (Array.isArray(specs) ? specs : [specs]).map((s) => emitRow(s, now));
  return store.engine.emit(rows, now, opts.cutoff ?? new Date(Date.parse(now) - DAY).toISOString());
}

/** The deliveries one emit created, flattened. */
export async function emitEntries(store: Store, specs: EmitSpec | EmitSpec[], opts: { now?: string } = {}) {
  return (await emit(store, specs, opts)).flatMap((w) => w.entries);
}

/** An outcome as the dispatcher reports it; a success by default. */
export function outcome(
  d: { id: string; webhookId: string; priority?: number },
  o: Partial<Outcome> = {},
): Outcome {
  const status = o.status ?? "success";
  const ok = status === "success";
  const attemptedAt = o.attemptedAt ?? NOW;
  return {
    deliveryId: d.id,
    webhookId: d.webhookId,
    event: "memory.created",
    priority: d.priority ?? 1,
    attempt: 1,
    attemptedAt,
    status,
    nextRetryAt: null,
    responseCode: ok ? 200 : 500,
    responseBody: ok ? "ok" : "oops",
    durationMs: 10,
    completedAt: status === "pending" || o.nextRetryAt ? null : attemptedAt,
    errorType: ok ? null : "http_status",
    errorMessage: ok ? null : "HTTP 500",
    attempted: true,
    ...o,
  };
}

/**
 * `store.engine.recordOutcomes` as a one-off writer (no engine lock) owned by "worker-a". On
 * PostgreSQL a row takes an outcome only from the claimer whose lease it bears, so the writer
 * first leases the deliveries the way a claimer does (`claim: false` to test the fence itself).
 */
export async function record(
  store: Store,
  outcomes: Outcome[],
  batch: Partial<Omit<OutcomeBatch, "outcomes">> = {},
  opts: { claim?: boolean } = {},
): Promise<Outcome[]> {
  const leaseOwner = batch.leaseOwner ?? "worker-a";
  if (store.dialect === "postgres" && opts.claim !== false && outcomes.length > 0) {
    const far = "2999-01-01T00:00:00.000Z";
    await store.queue.stampLeases(
      outcomes.map((o) => o.deliveryId),
      far,
      far,
      leaseOwner,
    );
  }
  return store.engine.recordOutcomes({
    leaseOwner,
    requireEngineLock: false,
    breakers: [],
    disabled: [],
    ...batch,
    outcomes,
  });
}

/** A failed attempt that will be retried at `retryAt`. */
export const retrying = (retryAt: string, o: Partial<Outcome> = {}): Partial<Outcome> => ({
  status: "failed",
  nextRetryAt: retryAt,
  completedAt: null,
  ...o,
});

export async function countRows(
  store: Store,
  table: "webhooks" | "webhook_events" | "webhook_deliveries" | "webhook_delivery_attempts" | "api_keys",
): Promise<number> {
  const r = await store.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
