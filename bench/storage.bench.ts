/**
 * What the store keeps and writes per delivery, at the defaults: N events with fan-out F, all
 * delivered (to the verifying receiver) and settled, then the whole database compared with
 * itself before the first emit. Generic on purpose — every table sqlite_master (or the schema)
 * lists, the whole database's size — so the same figures compare one schema with the next.
 *
 * SQLite (embedded): rows added per delivery (row counts of every table), row writes per delivery
 * (SQLite's total_changes() on the engine's connection: every row inserted, updated or deleted,
 * triggers included, indexes not), bytes per delivery (page_count × page_size, which counts what
 * is still in the WAL too; the note splits it by table and index with dbstat).
 * PostgreSQL (one process, Postgres-only queue): rows added, row writes (n_tup_ins + n_tup_upd +
 * n_tup_del of pg_stat_user_tables, read once the engine's connections have closed and flushed
 * them), bytes (pg_total_relation_size of every table: heap with its dead row versions not yet
 * vacuumed, indexes, TOAST) and WAL bytes
 * (pg_current_wal_lsn() before and after; cluster-wide, so any other writer on the server in
 * the meantime counts too).
 *
 * The bytes figures are set against the body a delivery sends (its canonical JSON), as a
 * baseline of what must at least be kept once per event.
 *
 *   BENCH_STORAGE_EVENTS   events per run, default 2000
 *   BENCH_STORAGE_FANOUTS  fan-outs to run (webhooks of the one user, all on "*"), default "1,10"
 *   PostgreSQL needs TEST_DATABASE_URL; parts: `npm run bench -- storage:sqlite` (sqlite, postgres)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { createEngine } from "../src/engine.js";
import { createLogger } from "../src/logger.js";
import { canonicalJson } from "../src/signer.js";
import { migrate, openStore, type Store } from "../src/store/index.js";
import { createPgSchema } from "../test/helpers/services.js";
import { ReceiverProcess } from "./receiver-client.js";
import type { Bench, Figure } from "./types.js";

const DEFAULTS = { WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", LOG_LEVEL: "silent" } as const;

/** A memory.created event's data, as the API bench sends it. */
const DATA = {
  memory_id: "mem_01JGTV5Q3K8ZB4N6Y2W0XR7M9E",
  content_preview: "Met Alice at the graph-theory conference; follow up on Eulerian paths in dynamic graphs",
  concepts: ["alice", "conference", "graph theory"],
  importance: 0.82,
};
const BODY_BYTES = Buffer.byteLength(
  canonicalJson({
    id: "evt_01JGTV5Q3K8ZB4N6Y2W0XR7M9E",
    event: "memory.created",
    created_at: "2026-01-01T00:00:00.000Z",
    user_id: "user0",
    data: { ...DATA, n: 1000 },
  }),
);

interface Snapshot {
  rows: Record<string, number>;
  bytes: number;
  /** Bytes per table or index, where the database can tell. */
  objects: Record<string, number>;
  /** Row writes so far, where the database can tell (null: it cannot). */
  writes: Record<string, number> | null;
  wal?: string;
}

function snapshotSqlite(path: string): Snapshot {
  const db = new SQLite(path, { readonly: true });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all() as Array<{ name: string }>;
    const rows: Record<string, number> = {};
    for (const { name } of tables) {
      rows[name] = (db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n;
    }
    const pages = db.pragma("page_count", { simple: true }) as number;
    const size = db.pragma("page_size", { simple: true }) as number;
    let objects: Record<string, number> = {};
    try {
      const per = db.prepare("SELECT name, sum(pgsize) AS b FROM dbstat GROUP BY name").all() as Array<{
        name: string;
        b: number;
      }>;
      objects = Object.fromEntries(per.map((o) => [o.name, o.b]));
    } catch {
      // built without the dbstat table: the whole size only
    }
    return { rows, bytes: pages * size, objects, writes: null };
  } finally {
    db.close();
  }
}

async function snapshotPg(url: string, schema: string): Promise<Snapshot> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const tables = (
      await c.query<{ name: string; bytes: string; heap: string; idx: string }>(
        `SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes,
                pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS idx
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
        [schema],
      )
    ).rows;
    const rows: Record<string, number> = {};
    const objects: Record<string, number> = {};
    let bytes = 0;
    for (const t of tables) {
      rows[t.name] = Number(
        (await c.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}"."${t.name}"`)).rows[0]!.n,
      );
      bytes += Number(t.bytes);
      objects[t.name] = Number(t.heap);
      objects[`${t.name} (indexes)`] = Number(t.idx);
      const toast = Number(t.bytes) - Number(t.heap) - Number(t.idx);
      if (toast > 0) objects[`${t.name} (TOAST)`] = toast;
    }
    const stats = (
      await c.query<{ name: string; n: string }>(
        `SELECT relname AS name, n_tup_ins + n_tup_upd + n_tup_del AS n
           FROM pg_stat_user_tables WHERE schemaname = $1`,
        [schema],
      )
    ).rows;
    const writes = Object.fromEntries(stats.map((s) => [s.name, Number(s.n)]));
    const wal = (await c.query<{ lsn: string }>("SELECT pg_current_wal_lsn() AS lsn")).rows[0]!.lsn;
    return { rows, bytes, objects, writes, wal };
  } finally {
    await c.end();
  }
}

/** Bytes of WAL between two LSNs ("16/B374D848"). */
function lsnDiff(from: string, to: string): number {
  const n = (lsn: string) => {
    const [hi, lo] = lsn.split("/");
    return BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`);
  };
  return Number(n(to) - n(from));
}

interface Measured {
  deliveries: number;
  before: Snapshot;
  after: Snapshot;
  /** SQLite: rows written on the engine's connection (total_changes()). */
  changes?: number;
  /** Seconds from the first emit to the settled database. */
  runSecs: number;
  /** PostgreSQL: WAL the server wrote in an idle stretch just after the run (for others). */
  idleWal?: { bytes: number; secs: number };
}

/**
 * `events` events to `fanout` webhooks of one user, delivered and settled, `snap` before and after.
 * The webhooks are made by an engine of their own, closed (and, for PostgreSQL, its connections
 * with it, so their table statistics are flushed) before the first snapshot: setup is not counted.
 */
async function deliverAll(
  rx: ReceiverProcess,
  open: () => Store,
  opts: { events: number; fanout: number; tag: string; reopen: boolean },
  snap: () => Promise<Snapshot>,
): Promise<Measured> {
  const { events, fanout, tag } = opts;
  let store = open();
  try {
    await migrate(store);
    const setup = createEngine({
      store,
      config: loadConfig(DEFAULTS),
      logger: createLogger("silent"),
      workers: false,
    });
    const secrets: Record<string, string> = {};
    for (let k = 0; k < fanout; k++) {
      const path = `/storage/${tag}/h${k}`;
      secrets[path] = (
        await setup.manager.create("user0", { url: `${rx.url}${path}`, events: ["*"] })
      ).secret;
    }
    rx.setSecrets(secrets);
    await setup.close();
    if (opts.reopen) {
      await store.close();
      await new Promise((r) => setTimeout(r, 11_000));
      store = open();
    }
    const before = await snap();
    const changes = store.dialect === "sqlite" ? store.sqlite.prepare("SELECT total_changes() AS n") : null;
    const c0 = changes ? (changes.get() as { n: number }).n : 0;
    const engine = createEngine({
      store,
      config: loadConfig(DEFAULTS),
      logger: createLogger("silent"),
      workers: true,
    });
    const deliveries = events * fanout;
    const started = performance.now();
    try {
      await rx.report(true);
      for (let i = 0; i < events; i += 100) {
        await engine.emitter.emitBatch(
          Array.from({ length: Math.min(100, events - i) }, (_, j) => ({
            event: "memory.created",
            userId: "user0",
            data: { ...DATA, n: i + j },
          })),
        );
      }
      const r = await rx.waitFor(deliveries, 600_000);
      if (r.verified < deliveries || r.rejected > 0) {
        throw new Error(`storage ${tag}: ${r.verified}/${deliveries} verified, ${r.rejected} bad`);
      }
    } finally {
      // Closing waits for every outcome to be written: then the database is settled.
      await engine.close();
    }
    const c1 = changes ? (changes.get() as { n: number }).n : 0;
    await store.close();
    // PostgreSQL: a backend reports its table statistics when it exits, or at the latest 10 s
    // after it went idle (pgstat's idle interval): wait that out once, before reading them.
    const settled = await snap();
    const runSecs = (performance.now() - started) / 1000;
    let after = settled;
    let idleWal: { bytes: number; secs: number } | undefined;
    if (opts.reopen) {
      const t = performance.now();
      await new Promise((r) => setTimeout(r, 11_000));
      after = { ...(await snap()), wal: settled.wal! };
      // What the server wrote meanwhile for others: the WAL figure's noise floor.
      const late = await snap();
      idleWal = { bytes: lsnDiff(settled.wal!, late.wal!), secs: (performance.now() - t) / 1000 };
    }
    return {
      deliveries,
      before,
      after,
      runSecs,
      ...(changes ? { changes: c1 - c0 } : {}),
      ...(idleWal ? { idleWal } : {}),
    };
  } finally {
    await store.close();
  }
}

async function sqliteRun(rx: ReceiverProcess, events: number, fanout: number): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), "cw-storage-"));
  const path = join(dir, "storage.db");
  try {
    return await deliverAll(
      rx,
      () => openStore({ sqlitePath: path, backgroundCheckpoint: true }),
      { events, fanout, tag: `s${fanout}`, reopen: false },
      async () => snapshotSqlite(path),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pgRun(rx: ReceiverProcess, events: number, fanout: number): Promise<Measured> {
  const schema = await createPgSchema();
  try {
    return await deliverAll(
      rx,
      () => openStore({ databaseUrl: schema.url }),
      { events, fanout, tag: `p${fanout}`, reopen: true },
      () => snapshotPg(schema.url, schema.schema),
    );
  } finally {
    await schema.drop();
  }
}

/** "name +x.xx" for every key whose value changed, largest first, each ÷ `per`. */
function perDelivery(
  before: Record<string, number>,
  after: Record<string, number>,
  per: number,
  digits: number,
) {
  return Object.keys(after)
    .map((k) => [k, ((after[k] ?? 0) - (before[k] ?? 0)) / per] as const)
    .filter(([, v]) => v !== 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${v.toFixed(digits)}`)
    .join(", ");
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((s, v) => s + v, 0);

function figures(db: string, fanout: number, events: number, m: Measured): Figure[] {
  const n = m.deliveries;
  const shape = `${db}, fan-out ${fanout}`;
  const counts = `${events} events × ${fanout} webhooks = ${n} deliveries, all delivered and settled, defaults`;
  const out: Figure[] = [
    {
      name: `rows added per delivery, ${shape}`,
      value: (sum(m.after.rows) - sum(m.before.rows)) / n,
      unit: "rows",
      baseline: null,
      ratio: null,
      note: `${counts}; ${perDelivery(m.before.rows, m.after.rows, n, 3)}`,
    },
  ];
  const writes =
    m.changes !== undefined
      ? { value: m.changes / n, how: "total_changes() on the engine's connection", by: "" }
      : m.after.writes && m.before.writes
        ? {
            value: (sum(m.after.writes) - sum(m.before.writes)) / n,
            how: "n_tup_ins + n_tup_upd + n_tup_del",
            by: `; ${perDelivery(m.before.writes, m.after.writes, n, 3)}`,
          }
        : null;
  if (writes) {
    out.push({
      name: `row writes per delivery, ${shape}`,
      value: writes.value,
      unit: "rows",
      baseline: null,
      ratio: null,
      note: `inserts + updates + deletes (${writes.how})${writes.by}`,
    });
  }
  const bytes = (m.after.bytes - m.before.bytes) / n;
  out.push({
    name: `bytes kept per delivery, ${shape}`,
    value: bytes,
    unit: "B",
    baseline: BODY_BYTES,
    ratio: bytes / BODY_BYTES,
    note: `whole database's growth; baseline the body one delivery sends; by object: ${perDelivery(m.before.objects, m.after.objects, n, 0)}`,
  });
  if (m.before.wal && m.after.wal) {
    const wal = lsnDiff(m.before.wal, m.after.wal) / n;
    const idle = m.idleWal ? m.idleWal.bytes / m.idleWal.secs : 0;
    out.push({
      name: `WAL bytes per delivery, ${shape}`,
      value: wal,
      unit: "B",
      baseline: BODY_BYTES,
      ratio: wal / BODY_BYTES,
      note: `pg_current_wal_lsn() before and after, cluster-wide: the server wrote ${idle.toFixed(0)} B/s for others in ${m.idleWal?.secs.toFixed(0)} s idle just after, i.e. ~${((idle * m.runSecs) / n).toFixed(0)} B/delivery of this may not be ours`,
    });
  }
  return out;
}

export default {
  name: "storage",
  async run(only = () => true) {
    const events = Number(process.env.BENCH_STORAGE_EVENTS ?? 2000);
    const fanouts = (process.env.BENCH_STORAGE_FANOUTS ?? "1,10")
      .split(",")
      .filter((s) => s.trim() !== "")
      .map(Number);
    const rx = await ReceiverProcess.start();
    const out: Figure[] = [];
    try {
      if (only("sqlite")) {
        for (const f of fanouts) out.push(...figures("SQLite", f, events, await sqliteRun(rx, events, f)));
      }
      if (only("postgres")) {
        if (!process.env.TEST_DATABASE_URL) {
          process.stderr.write("storage: PostgreSQL skipped (set TEST_DATABASE_URL)\n");
        } else {
          for (const f of fanouts) out.push(...figures("PostgreSQL", f, events, await pgRun(rx, events, f)));
        }
      }
      return out;
    } finally {
      await rx.stop();
    }
  },
} satisfies Bench;
