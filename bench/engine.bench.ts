/**
 * The delivery engine, embedded (SQLite), against a receiver in another process that verifies
 * every signature. Baselines are measured in the same run: raw undici Pool POSTs of the same
 * bodies to the same receiver, and raw SQLite inserts.
 *
 *   BENCH_EVENTS      events for the throughput run (× 50 webhooks), default 2000
 *   BENCH_RATE_SECS   seconds of the fixed-rate latency run at 1,000 events/s, default 30
 *   BENCH_BACKLOG     pending deliveries for the memory run, default 1,000,000 (0 skips it)
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { loadConfig } from "../src/config.js";
import { createEngine, type Engine } from "../src/engine.js";
import { newId } from "../src/ids.js";
import { createLogger } from "../src/logger.js";
import { signBody } from "../src/signer.js";
import { migrate, openStore, type Store } from "../src/store/index.js";
import { ReceiverProcess } from "./receiver-client.js";
import type { Bench, Figure } from "./types.js";

const WEBHOOKS = 50;
const WORKERS = 64;
const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);

function pct(sorted: number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function withEngine<T>(
  rx: ReceiverProcess,
  fn: (ctx: { engine: Engine; store: Store; users: string[] }) => Promise<T>,
  opts: { webhooksPerUser: number; users: number; workers?: number },
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "cw-bench-"));
  const store = openStore({ sqlitePath: join(dir, "bench.db"), backgroundCheckpoint: true });
  await migrate(store);
  const config = loadConfig({
    WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32",
    WEBHOOK_WORKERS: String(opts.workers ?? WORKERS),
    LOG_LEVEL: "silent",
  });
  const engine = createEngine({ store, config, logger: createLogger("silent"), workers: true });
  const users: string[] = [];
  const secrets: Record<string, string> = {};
  for (let u = 0; u < opts.users; u++) {
    users.push(`user${u}`);
    for (let k = 0; k < opts.webhooksPerUser; k++) {
      const path = `/u${u}/h${k}`;
      const { secret } = await engine.manager.create(`user${u}`, { url: `${rx.url}${path}`, events: ["*"] });
      secrets[path] = secret;
    }
  }
  rx.setSecrets(secrets);
  try {
    return await fn({ engine, store, users });
  } finally {
    await engine.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Raw undici: the same number of signed bodies, `WORKERS` in flight, to the same receiver. */
async function rawUndici(
  rx: ReceiverProcess,
  bodies: number,
  secrets: Record<string, string>,
): Promise<number> {
  const pool = new Pool(rx.url, { connections: WORKERS, pipelining: 1 });
  const paths = Object.keys(secrets);
  const body = JSON.stringify({
    id: "evt_x",
    event: "memory.created",
    created_at: new Date().toISOString(),
    user_id: "u",
    data: { n: 1 },
  });
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < bodies) {
      const i = next++;
      const path = paths[i % paths.length]!;
      const headers = signBody({
        secret: secrets[path]!,
        body,
        deliveryId: `dlv_${i}`,
        timestamp: Math.floor(Date.now() / 1000),
        event: "memory.created",
      });
      const res = await pool.request({ origin: rx.url, path, method: "POST", body, headers });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, lane));
  const rate = bodies / ((performance.now() - started) / 1000);
  await pool.close();
  return rate;
}

async function throughput(rx: ReceiverProcess): Promise<Figure[]> {
  const events = env("BENCH_EVENTS", 2000);
  const total = events * WEBHOOKS;
  let secrets: Record<string, string> = {};
  const engineRate = await withEngine(
    rx,
    async ({ engine }) => {
      await rx.report(true);
      const started = performance.now();
      for (let i = 0; i < events; i += 100) {
        await engine.emitter.emitBatch(
          Array.from({ length: Math.min(100, events - i) }, (_, j) => ({
            event: "memory.created",
            userId: "user0",
            data: { n: i + j },
          })),
        );
      }
      const r = await rx.waitFor(total, 600_000);
      const secs = (performance.now() - started) / 1000;
      if (r.verified < total || r.duplicates > 0 || r.rejected > 0) {
        throw new Error(
          `throughput run: ${r.verified}/${total} verified, ${r.duplicates} dup, ${r.rejected} bad`,
        );
      }
      return total / secs;
    },
    { users: 1, webhooksPerUser: WEBHOOKS },
  );
  // The baseline needs the receiver to know some secrets: reuse fresh ones for its paths.
  secrets = Object.fromEntries(
    Array.from({ length: WEBHOOKS }, (_, k) => [
      `/raw/h${k}`,
      "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw=",
    ]),
  );
  rx.setSecrets(secrets);
  const rawRate = await rawUndici(rx, total, secrets);
  return [
    {
      name: "e2e throughput, embedded (50 webhooks)",
      value: engineRate,
      unit: "deliveries/s",
      baseline: rawRate,
      ratio: engineRate / rawRate,
      note: `${total} durable deliveries, verified by a receiver process; baseline raw undici Pool`,
    },
  ];
}

async function fixedRate(rx: ReceiverProcess): Promise<Figure[]> {
  const secs = env("BENCH_RATE_SECS", 30);
  if (secs <= 0) return [];
  const rate = 1000;
  return withEngine(
    rx,
    async ({ engine, users }) => {
      await rx.report(true);
      const started = Date.now();
      let sent = 0;
      // Arrivals follow the wall clock, not the previous emit: a backlog shows up as latency.
      while (sent < rate * secs) {
        const due = Math.floor(((Date.now() - started) / 1000) * rate);
        while (sent < due && sent < rate * secs) {
          await engine.emitter.emit("memory.created", {
            userId: users[sent % users.length]!,
            data: { t: Date.now() },
          });
          sent++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      const r = await rx.waitFor(sent, 60_000);
      const l = r.latencies.sort((a, b) => a - b);
      return [
        {
          name: "emit-to-receipt p50 at 1,000 events/s",
          value: pct(l, 0.5),
          unit: "ms",
          baseline: null,
          ratio: null,
          note: `${secs}s, one webhook per event`,
        },
        {
          name: "emit-to-receipt p99 at 1,000 events/s",
          value: pct(l, 0.99),
          unit: "ms",
          baseline: null,
          ratio: null,
          note: `${l.length} deliveries`,
        },
      ];
    },
    { users: 20, webhooksPerUser: 1 },
  );
}

async function emitLatency(rx: ReceiverProcess): Promise<Figure[]> {
  return withEngine(
    rx,
    async ({ engine, store }) => {
      const samples: number[] = [];
      for (let i = 0; i < 3000; i++) {
        const t0 = performance.now();
        await engine.emitter.emit("memory.created", { userId: "user0", data: { i } });
        samples.push(performance.now() - t0);
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
      }
      samples.sort((a, b) => a - b);
      // Baseline: one raw prepared INSERT of a delivery-sized row, one per transaction.
      const raw = store.dialect === "sqlite" ? store.sqlite : null;
      const base: number[] = [];
      if (raw) {
        raw.exec("CREATE TABLE bench_raw (id TEXT PRIMARY KEY, body TEXT)");
        const ins = raw.prepare("INSERT INTO bench_raw VALUES (?, ?)");
        for (let i = 0; i < 3000; i++) {
          const t0 = performance.now();
          ins.run(newId("dlv"), JSON.stringify({ i, pad: "x".repeat(200) }));
          base.push(performance.now() - t0);
        }
        base.sort((a, b) => a - b);
      }
      return [
        {
          name: "emit() p99, 1 event, 5 subscribers",
          value: pct(samples, 0.99),
          unit: "ms",
          baseline: base.length ? pct(base, 0.99) : null,
          ratio: base.length ? pct(samples, 0.99) / pct(base, 0.99) : null,
          note: `p50 ${pct(samples, 0.5).toFixed(3)} ms; baseline one raw SQLite insert`,
        },
      ];
    },
    { users: 1, webhooksPerUser: 5 },
  );
}

/** Peak resident set size of a process, from the kernel's own high-water mark. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/**
 * A real `continuum-webhooks worker` process drains a backlog written straight into its SQLite
 * file; its peak RSS is compared with the same worker idling on an empty backlog.
 */
async function backlogMemory(rx: ReceiverProcess): Promise<Figure[]> {
  const backlog = env("BENCH_BACKLOG", 1_000_000);
  if (backlog <= 0) return [];
  const dir = mkdtempSync(join(tmpdir(), "cw-backlog-"));
  const sqlitePath = join(dir, "backlog.db");
  try {
    const store = openStore({ sqlitePath });
    await migrate(store);
    const config = loadConfig({ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32" });
    const setup = createEngine({ store, config, logger: createLogger("silent"), workers: false });
    const secrets: Record<string, string> = {};
    for (let k = 0; k < WEBHOOKS; k++) {
      const path = `/backlog/h${k}`;
      secrets[path] = (
        await setup.manager.create("user0", { url: `${rx.url}${path}`, events: ["*"] })
      ).secret;
    }
    rx.setSecrets(secrets);
    await setup.close();
    const startWorker = () =>
      spawn(
        process.execPath,
        [
          fileURLToPath(new URL("../bin/continuum-webhooks.js", import.meta.url)),
          "worker",
          "--workers",
          String(WORKERS),
          "--metrics-port",
          "0",
        ],
        {
          env: {
            ...process.env,
            SQLITE_PATH: sqlitePath,
            WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32",
            LOG_LEVEL: "warn",
            // e.g. --max-semi-space-size=2, to see what V8's heap sizing does to the peak.
            NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS ?? "",
          },
          stdio: "ignore",
        },
      );
    // Idle baseline: the same worker with nothing to do.
    const idle = startWorker();
    await new Promise((r) => setTimeout(r, 3000));
    const idleRss = peakRssMiB(idle.pid!);
    idle.kill("SIGTERM");
    await new Promise((r) => idle.once("exit", r));

    const raw = store.dialect === "sqlite" ? store.sqlite : null;
    if (!raw) return [];
    const hooks = raw.prepare("SELECT id FROM webhooks").all() as Array<{ id: string }>;
    const ins = raw.prepare(
      `INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, payload, status, priority, attempts, next_retry_at, duration_ms, created_at)
       VALUES (?, ?, ?, 'memory.created', ?, 'pending', 1, 0, ?, 0, ?)`,
    );
    const now = new Date().toISOString();
    const body =
      '{"created_at": "2026-01-01T00:00:00.000Z", "data": {"n": 1}, "event": "memory.created", "id": "evt_x", "user_id": "user0"}';
    const tx = raw.transaction((n: number) => {
      for (let i = 0; i < n; i++) ins.run(newId("dlv"), hooks[i % hooks.length]!.id, "evt_x", body, now, now);
    });
    for (let i = 0; i < backlog; i += 10_000) tx(Math.min(10_000, backlog - i));
    await store.close();

    await rx.report(true);
    const started = performance.now();
    const worker = startWorker();
    const r = await rx.waitFor(backlog, 3_600_000);
    const secs = (performance.now() - started) / 1000;
    const peak = peakRssMiB(worker.pid!);
    worker.kill("SIGTERM");
    await new Promise((res) => worker.once("exit", res));
    return [
      {
        name: "peak RSS of a worker draining a backlog",
        value: peak,
        unit: "MiB",
        baseline: idleRss,
        ratio: peak / idleRss,
        note: `${r.verified} of ${backlog} pending deliveries in ${secs.toFixed(0)} s (${(r.verified / secs).toFixed(0)}/s); baseline the same worker idle`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export default {
  name: "engine",
  async run() {
    const rx = await ReceiverProcess.start();
    try {
      return [
        ...(await throughput(rx)),
        ...(await emitLatency(rx)),
        ...(await fixedRate(rx)),
        ...(await backlogMemory(rx)),
      ];
    } finally {
      await rx.stop();
    }
  },
} satisfies Bench;
