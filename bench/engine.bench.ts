/**
 * The delivery engine, embedded (SQLite), at its DEFAULT settings (no WEBHOOK_WORKERS, no
 * --workers: the defaults are the product), against a receiver in another process that verifies
 * every signature. Baselines are measured in the same run: raw undici Pool POSTs of signed bodies
 * to the same receiver (bench/raw.ts), a BullMQ sender, the healthy endpoint alone, raw SQLite
 * inserts, the same worker idle.
 *
 * Shapes (issue 13): A is one user with 10 webhooks, each subscribed to "*", events emitted in
 * batches of 100 (fan-out 10); B is 50 users with one webhook each, events round-robin over the
 * users in batches of 100 (fan-out 1), as many deliveries as A.
 *
 *   BENCH_EVENTS       shape A's events (× 10 webhooks = deliveries; B and BullMQ send as many
 *                      deliveries), default 5000
 *   BENCH_RATE_SECS    seconds of the fixed-rate latency run at 1,000 events/s, default 30
 *   BENCH_HANG         hanging-endpoint counts, each run with its own engine, the hanging
 *                      endpoints on a host:port of their own, default "1,5,20" ("" skips)
 *   BENCH_HANG_SHARED  the same, with the hanging endpoints on the healthy one's host:port,
 *                      default "1,5,20" ("" skips)
 *   BENCH_HANG_SECS    seconds each hanging run emits, default 10
 *   BENCH_HANG_RATE    events/s of the hanging runs, default 200
 *   BENCH_BACKLOG      pending deliveries for the memory run, default 1,000,000 (0 skips it);
 *                      it spawns bin/continuum-webhooks.js: build first (npx tsc -p tsconfig.build.json)
 *
 * Parts, to run one alone: `npm run bench -- engine:shapes` (shapes, bullmq, emit, rate, hanging,
 * backlog).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type Job, Queue, Worker } from "bullmq";
import { Pool } from "undici";
import { loadConfig } from "../src/config.js";
import { createEngine, type Engine } from "../src/engine.js";
import { newId } from "../src/ids.js";
import { createLogger } from "../src/logger.js";
import { canonicalJson, generateSecret, signBody } from "../src/signer.js";
import { migrate, openStore, type Store } from "../src/store/index.js";
import { startRedisServer } from "../test/helpers/redis-server.js";
import { cpuOf, ownCpu, pct, peakRssMiB, receiverCpu } from "./proc.js";
import { type RawResult, rawUndici } from "./raw.js";
import { ReceiverProcess } from "./receiver-client.js";
import type { Bench, Figure } from "./types.js";

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const list = (name: string, dflt: string) =>
  (process.env[name] ?? dflt)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number);

/** The raw baseline's requests in flight (one Pool, as many connections). */
const RAW_IN_FLIGHT = 64;
const FANOUT_A = 10;
const USERS_B = 50;
/** Every engine here runs at the defaults; only the target allow-list is set. */
const DEFAULTS = { WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", LOG_LEVEL: "silent" } as const;

interface Hook {
  userId: string;
  url: string;
}

async function withEngine<T>(
  rx: ReceiverProcess,
  hooks: Hook[],
  fn: (ctx: { engine: Engine; store: Store }) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "cw-bench-"));
  const store = openStore({ sqlitePath: join(dir, "bench.db"), backgroundCheckpoint: true });
  await migrate(store);
  const engine = createEngine({
    store,
    config: loadConfig(DEFAULTS),
    logger: createLogger("silent"),
    workers: true,
  });
  const secrets: Record<string, string> = {};
  for (const h of hooks) {
    const { secret } = await engine.manager.create(h.userId, { url: h.url, events: ["*"] });
    if (h.url.startsWith(`${rx.url}/`)) secrets[h.url.slice(rx.url.length)] = secret;
  }
  rx.setSecrets(secrets);
  try {
    return await fn({ engine, store });
  } finally {
    await engine.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ShapeRun {
  rate: number;
  secs: number;
  emitSecs: number;
  cpuPer1000: number;
  cpu: number;
  rxCpu: number;
}

/**
 * Shape A or B: `deliveries` deliveries, timed from the first emit to the receiver's last
 * verified request; CPU of this process (every thread: the engine, its checkpointer) meanwhile.
 */
async function shape(rx: ReceiverProcess, kind: "A" | "B", deliveries: number): Promise<ShapeRun> {
  const hooks: Hook[] =
    kind === "A"
      ? Array.from({ length: FANOUT_A }, (_, k) => ({ userId: "user0", url: `${rx.url}/a/h${k}` }))
      : Array.from({ length: USERS_B }, (_, u) => ({ userId: `user${u}`, url: `${rx.url}/b/u${u}` }));
  const events = kind === "A" ? Math.ceil(deliveries / FANOUT_A) : deliveries;
  const total = kind === "A" ? events * FANOUT_A : events;
  return withEngine(rx, hooks, async ({ engine }) => {
    await rx.report(true);
    const cpu0 = process.cpuUsage();
    const rx0 = receiverCpu();
    const started = performance.now();
    for (let i = 0; i < events; i += 100) {
      await engine.emitter.emitBatch(
        Array.from({ length: Math.min(100, events - i) }, (_, j) => ({
          event: "memory.created",
          userId: kind === "A" ? "user0" : `user${(i + j) % USERS_B}`,
          data: { n: i + j },
        })),
      );
    }
    const emitSecs = (performance.now() - started) / 1000;
    const r = await rx.waitFor(total, 600_000);
    const secs = (performance.now() - started) / 1000;
    const cpu = ownCpu(cpu0);
    const rxCpu = receiverCpu() - rx0;
    if (r.verified < total || r.duplicates > 0 || r.rejected > 0) {
      throw new Error(
        `shape ${kind}: ${r.verified}/${total} verified, ${r.duplicates} dup, ${r.rejected} bad`,
      );
    }
    return { rate: total / secs, secs, emitSecs, cpu, cpuPer1000: cpu / (total / 1000), rxCpu };
  });
}

/**
 * A competent team's own sender, for shape A's deliveries: BullMQ 5 (Queue + Worker, concurrency
 * 50, addBulk of one job per delivery: the webhook's path and the event's canonical body), the
 * processor signs with signBody and POSTs through an undici Pool of 50 connections, retries by
 * BullMQ attempts (6) with exponential backoff from 1 s. A private redis-server without
 * persistence (no RDB, no AOF).
 */
async function bullmq(rx: ReceiverProcess, deliveries: number): Promise<ShapeRun & { redisCpu: number }> {
  const redis = await startRedisServer();
  const connection = { host: "127.0.0.1", port: redis.port, maxRetriesPerRequest: null };
  const name = "webhooks";
  const paths = Array.from({ length: FANOUT_A }, (_, k) => `/bullmq/h${k}`);
  const secrets = Object.fromEntries(paths.map((p) => [p, generateSecret()]));
  rx.setSecrets(secrets);
  const pool = new Pool(rx.url, { connections: 50, pipelining: 1 });
  const queue = new Queue(name, { connection });
  type Data = { path: string; body: string; event: string };
  const worker = new Worker<Data>(
    name,
    async (job: Job<Data>) => {
      const { path, body, event } = job.data;
      const headers = signBody({
        secret: secrets[path]!,
        body,
        deliveryId: `bmq_${job.id}`,
        timestamp: Math.floor(Date.now() / 1000),
        event,
      });
      const res = await pool.request({
        path,
        method: "POST",
        body,
        headers,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      await res.body.dump({ limit: 65_536 });
      if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
    },
    { connection, concurrency: 50 },
  );
  try {
    await worker.waitUntilReady();
    await queue.waitUntilReady();
    const events = Math.ceil(deliveries / FANOUT_A);
    const total = events * FANOUT_A;
    await rx.report(true);
    const cpu0 = process.cpuUsage();
    const redis0 = cpuOf(redis.pid);
    const rx0 = receiverCpu();
    const started = performance.now();
    for (let i = 0; i < events; i += 100) {
      const jobs = [];
      for (let j = i; j < Math.min(events, i + 100); j++) {
        const id = `evt_${j}`;
        const body = canonicalJson({
          id,
          event: "memory.created",
          created_at: new Date().toISOString(),
          user_id: "user0",
          data: { n: j },
        });
        for (const path of paths) {
          jobs.push({
            name: "deliver",
            data: { path, body, event: "memory.created" },
            opts: {
              attempts: 6,
              backoff: { type: "exponential", delay: 1000 },
              removeOnComplete: true,
              removeOnFail: 1000,
            },
          });
        }
      }
      await queue.addBulk(jobs);
    }
    const emitSecs = (performance.now() - started) / 1000;
    const r = await rx.waitFor(total, 600_000);
    const secs = (performance.now() - started) / 1000;
    const cpu = ownCpu(cpu0);
    const redisCpu = cpuOf(redis.pid) - redis0;
    const rxCpu = receiverCpu() - rx0;
    if (r.verified < total || r.rejected > 0) {
      throw new Error(`BullMQ: ${r.verified}/${total} verified, ${r.rejected} bad`);
    }
    return {
      rate: total / secs,
      secs,
      emitSecs,
      cpu,
      redisCpu,
      rxCpu,
      cpuPer1000: (cpu + redisCpu) / (total / 1000),
    };
  } finally {
    await worker.close();
    await queue.close();
    await pool.close();
    await redis.stop();
  }
}

async function emitLatency(rx: ReceiverProcess): Promise<Figure[]> {
  const hooks = Array.from({ length: 5 }, (_, k) => ({ userId: "user0", url: `${rx.url}/emit/h${k}` }));
  return withEngine(rx, hooks, async ({ engine, store }) => {
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
        note: `p50 ${pct(samples, 0.5).toFixed(3)} ms; baseline one raw SQLite insert; defaults, delivering meanwhile`,
      },
    ];
  });
}

async function fixedRate(rx: ReceiverProcess): Promise<Figure[]> {
  const secs = env("BENCH_RATE_SECS", 30);
  if (secs <= 0) return [];
  const rate = 1000;
  const hooks = Array.from({ length: 20 }, (_, u) => ({ userId: `user${u}`, url: `${rx.url}/rate/u${u}` }));
  return withEngine(rx, hooks, async ({ engine }) => {
    await rx.report(true);
    const started = Date.now();
    let sent = 0;
    // Arrivals follow the wall clock, not the previous emit: a backlog shows up as latency.
    while (sent < rate * secs) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      while (sent < due && sent < rate * secs) {
        await engine.emitter.emit("memory.created", {
          userId: `user${sent % hooks.length}`,
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
        note: `${secs}s, 20 users with one webhook each, one delivery per event; defaults`,
      },
      {
        name: "emit-to-receipt p99 at 1,000 events/s",
        value: pct(l, 0.99),
        unit: "ms",
        baseline: null,
        ratio: null,
        note: `${l.length} of ${sent} deliveries received`,
      },
    ];
  });
}

/** An endpoint that never answers: it reads each request and holds it open until closed. */
async function startHangServer() {
  let now = 0;
  let max = 0;
  const perPath = new Map<string, { now: number; max: number }>();
  const server = createServer((req, res) => {
    const path = req.url ?? "";
    const p = perPath.get(path) ?? { now: 0, max: 0 };
    perPath.set(path, p);
    now++;
    p.now++;
    max = Math.max(max, now);
    p.max = Math.max(p.max, p.now);
    res.once("close", () => {
      now--;
      p.now--;
    });
    req.resume();
  });
  server.requestTimeout = 0;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  let closed: Promise<unknown> | undefined;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** The most requests held at once, in all and for any one path. */
    stats: () => ({ max, maxPerPath: Math.max(0, ...[...perPath.values()].map((p) => p.max)) }),
    /** Refuses new connections and destroys the held ones. */
    close: () => {
      if (!closed) {
        closed = new Promise((r) => server.close(r));
        server.closeAllConnections();
      }
      return closed;
    },
  };
}

interface HangRun {
  sorted: number[];
  /** emit() call times, ascending (ms). */
  emits: number[];
  /** This process's event-loop delay while emitting: p99 and max (ms). */
  loopP99: number;
  loopMax: number;
  /** CPU this process used while emitting, in cores. */
  cores: number;
  /** Median delay of the first and of the last quarter of the healthy deliveries received. */
  drift: readonly [number, number];
  sent: number;
  received: number;
  heldMax: number;
  heldMaxPerHook: number;
}

/**
 * One user: a healthy webhook on the verifying receiver and `n` hanging ones, all subscribed to
 * "*", so every event goes to each of them. Emits `rate` events/s for `secs` s on the wall clock;
 * each carries its emit time (data.t). Waits up to 30 s after the last emit for the healthy
 * endpoint to have them all; an event it never got counts as an infinite latency.
 */
async function hangRun(rx: ReceiverProcess, n: number, shared: boolean): Promise<HangRun> {
  const secs = env("BENCH_HANG_SECS", 10);
  const rate = env("BENCH_HANG_RATE", 200);
  const hang = shared ? null : await startHangServer();
  const tag = `${shared ? "s" : "o"}${n}`;
  const hooks: Hook[] = [
    { userId: "user0", url: `${rx.url}/healthy/${tag}` },
    ...Array.from({ length: n }, (_, k) => ({
      userId: "user0",
      url: hang ? `${hang.url}/h${k}` : `${rx.url}/hang/${tag}/h${k}`,
    })),
  ];
  try {
    return await withEngine(rx, hooks, async ({ engine }) => {
      await rx.report(true);
      const loop = monitorEventLoopDelay({ resolution: 5 });
      loop.enable();
      const cpu0 = process.cpuUsage();
      const emits: number[] = [];
      const started = Date.now();
      let sent = 0;
      while (sent < rate * secs) {
        const due = Math.floor(((Date.now() - started) / 1000) * rate);
        while (sent < due && sent < rate * secs) {
          const t0 = performance.now();
          await engine.emitter.emit("memory.created", { userId: "user0", data: { t: Date.now() } });
          emits.push(performance.now() - t0);
          sent++;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      loop.disable();
      const cores = ownCpu(cpu0) / ((Date.now() - started) / 1000);
      const r = await rx.waitFor(sent, 30_000);
      // Stop claiming before the hanging requests are let go, so none is started again.
      void engine.worker?.stop();
      let heldMax: number;
      let heldMaxPerHook: number;
      if (hang) {
        ({ max: heldMax, maxPerPath: heldMaxPerHook } = hang.stats());
        await hang.close();
      } else {
        const hangPaths = Object.keys(r.maxInFlight).filter((p) => p.startsWith(`/hang/${tag}/`));
        heldMaxPerHook = Math.max(0, ...hangPaths.map((p) => r.maxInFlight[p]!));
        heldMax = r.held; // at the end; the receiver keeps no maximum over a set of paths
        rx.release();
      }
      // In arrival order: does the delay grow as the hanging webhooks' backlog does?
      const q = Math.max(1, Math.floor(r.latencies.length / 4));
      const median = (xs: number[]) =>
        pct(
          [...xs].sort((a, b) => a - b),
          0.5,
        );
      const drift = [median(r.latencies.slice(0, q)), median(r.latencies.slice(-q))] as const;
      const sorted = r.latencies.sort((a, b) => a - b);
      const received = sorted.length;
      for (let i = received; i < sent; i++) sorted.push(Number.POSITIVE_INFINITY);
      return {
        sorted,
        sent,
        received,
        heldMax,
        heldMaxPerHook,
        drift,
        emits: emits.sort((a, b) => a - b),
        loopP99: loop.percentile(99) / 1e6,
        loopMax: loop.max / 1e6,
        cores,
      };
    });
  } finally {
    await hang?.close();
  }
}

async function hanging(rx: ReceiverProcess): Promise<Figure[]> {
  const own = list("BENCH_HANG", "1,5,20");
  const shared = list("BENCH_HANG_SHARED", "1,5,20");
  if (own.length + shared.length === 0) return [];
  const rate = env("BENCH_HANG_RATE", 200);
  const secs = env("BENCH_HANG_SECS", 10);
  const alone = await hangRun(rx, 0, false);
  const a50 = pct(alone.sorted, 0.5);
  const a99 = pct(alone.sorted, 0.99);
  const figures: Figure[] = [];
  for (const [counts, isShared] of [
    [own, false],
    [shared, true],
  ] as const) {
    for (const n of counts) {
      const run = await hangRun(rx, n, isShared);
      const where = isShared ? "on its host:port" : "on their own host:port";
      const p50 = pct(run.sorted, 0.5);
      const p99 = pct(run.sorted, 0.99);
      const held = isShared ? `${run.heldMax} held at the end` : `up to ${run.heldMax} held at once`;
      figures.push(
        {
          name: `healthy emit→receipt p50, ${n} hanging ${where}`,
          value: p50,
          unit: "ms",
          baseline: a50,
          ratio: p50 / a50,
          note: `${rate} events/s for ${secs} s, all webhooks on "*", defaults; baseline the healthy one alone; first quarter's p50 ${run.drift[0]} ms, last quarter's ${run.drift[1]} ms`,
        },
        {
          name: `healthy emit→receipt p99, ${n} hanging ${where}`,
          value: p99,
          unit: "ms",
          baseline: a99,
          ratio: p99 / a99,
          note: `goal ≤ 250 ms; received ${run.received}/${run.sent} (alone ${alone.received}/${alone.sent}), max ${run.sorted[run.sorted.length - 1]} ms; hanging: ${held}, ≤ ${run.heldMaxPerHook} per webhook; emit() p99 ${pct(run.emits, 0.99).toFixed(1)} ms, event-loop delay p99 ${run.loopP99.toFixed(0)} ms, max ${run.loopMax.toFixed(0)} ms (alone ${alone.loopP99.toFixed(0)} / ${alone.loopMax.toFixed(0)}); this process ${run.cores.toFixed(2)} cores (alone ${alone.cores.toFixed(2)})`,
        },
      );
    }
  }
  return figures;
}

/**
 * A real `continuum-webhooks worker` process at its defaults (no --workers) drains a backlog
 * written straight into its SQLite file; its peak RSS is compared with the same worker idling on
 * an empty backlog.
 */
async function backlogMemory(rx: ReceiverProcess): Promise<Figure[]> {
  const backlog = env("BENCH_BACKLOG", 1_000_000);
  if (backlog <= 0) return [];
  const bin = fileURLToPath(new URL("../bin/continuum-webhooks.js", import.meta.url));
  if (!existsSync(fileURLToPath(new URL("../dist/cli.js", import.meta.url)))) {
    throw new Error("backlog: build dist/ first (npx tsc -p tsconfig.build.json)");
  }
  const webhooks = 50;
  const dir = mkdtempSync(join(tmpdir(), "cw-backlog-"));
  const sqlitePath = join(dir, "backlog.db");
  try {
    const store = openStore({ sqlitePath });
    await migrate(store);
    const setup = createEngine({
      store,
      config: loadConfig(DEFAULTS),
      logger: createLogger("silent"),
      workers: false,
    });
    const secrets: Record<string, string> = {};
    for (let k = 0; k < webhooks; k++) {
      const path = `/backlog/h${k}`;
      secrets[path] = (
        await setup.manager.create("user0", { url: `${rx.url}${path}`, events: ["*"] })
      ).secret;
    }
    rx.setSecrets(secrets);
    await setup.close();
    const startWorker = () =>
      spawn(process.execPath, [bin, "worker", "--metrics-port", "0"], {
        env: {
          PATH: process.env.PATH,
          SQLITE_PATH: sqlitePath,
          WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32",
          LOG_LEVEL: "warn",
          // e.g. --max-semi-space-size=2, to see what V8's heap sizing does to the peak.
          NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS ?? "",
        },
        stdio: "ignore",
      });
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
        note: `goal ≤ 200 MiB for 1,000,000; ${r.verified} of ${backlog} pending deliveries (${webhooks} webhooks) in ${secs.toFixed(0)} s (${(r.verified / secs).toFixed(0)}/s), worker at defaults (no --workers); baseline the same worker idle`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const s = (n: number) => n.toFixed(1);

export default {
  name: "engine",
  async run(only = () => true) {
    const rx = await ReceiverProcess.start();
    const deliveries = env("BENCH_EVENTS", 5000) * FANOUT_A;
    const figures: Figure[] = [];
    let raw: RawResult | undefined;
    let rawNote = "";
    let shapeA: ShapeRun | undefined;
    const rawOnce = async () => {
      raw ??= await rawUndici(rx, { bodies: deliveries, paths: FANOUT_A, inFlight: RAW_IN_FLIGHT });
      rawNote ||= `baseline raw undici Pool, ${RAW_IN_FLIGHT} in flight, ${deliveries} signed POSTs`;
      return raw;
    };
    try {
      // Warm-up (JIT, connections, the receiver), not measured.
      await rawUndici(rx, { bodies: 5000, paths: FANOUT_A, inFlight: RAW_IN_FLIGHT, tag: "warm" });
      if (only("shapes")) {
        // The baseline before and after the engine's runs, averaged: the machine drifts.
        const r1 = await rawUndici(rx, { bodies: deliveries, paths: FANOUT_A, inFlight: RAW_IN_FLIGHT });
        const a = await shape(rx, "A", deliveries);
        const b = await shape(rx, "B", deliveries);
        const r2 = await rawUndici(rx, { bodies: deliveries, paths: FANOUT_A, inFlight: RAW_IN_FLIGHT });
        raw = { rate: (r1.rate + r2.rate) / 2, cpuPer1000: (r1.cpuPer1000 + r2.cpuPer1000) / 2 };
        rawNote = `baseline raw undici Pool, ${RAW_IN_FLIGHT} in flight, mean of a run before (${r1.rate.toFixed(0)}/s) and after (${r2.rate.toFixed(0)}/s)`;
        shapeA = a;
        const shapeNote = (r: ShapeRun) =>
          `${s(r.secs)} s wall (emits ${s(r.emitSecs)} s), this process ${s(r.cpu)} CPU-s = ${(r.cpu / r.secs).toFixed(2)} cores, receiver ${s(r.rxCpu)} CPU-s`;
        figures.push(
          {
            name: "e2e shape A (1 user, 10 webhooks, fan-out 10)",
            value: a.rate,
            unit: "deliveries/s",
            baseline: raw.rate,
            ratio: a.rate / raw.rate,
            note: `goal ≥ 0.4; ${deliveries} deliveries, batches of 100 events, defaults, embedded SQLite; ${rawNote}`,
          },
          {
            name: "CPU per 1,000 deliveries, shape A",
            value: a.cpuPer1000,
            unit: "CPU-s",
            baseline: raw.cpuPer1000,
            ratio: a.cpuPer1000 / raw.cpuPer1000,
            note: `${shapeNote(a)}; baseline raw undici's own CPU`,
          },
          {
            name: "e2e shape B (50 users × 1 webhook, fan-out 1)",
            value: b.rate,
            unit: "deliveries/s",
            baseline: raw.rate,
            ratio: b.rate / raw.rate,
            note: `goal ≥ 0.4; ${deliveries} events round-robin over 50 users, batches of 100, defaults, embedded SQLite`,
          },
          {
            name: "CPU per 1,000 deliveries, shape B",
            value: b.cpuPer1000,
            unit: "CPU-s",
            baseline: raw.cpuPer1000,
            ratio: b.cpuPer1000 / raw.cpuPer1000,
            note: `${shapeNote(b)}; baseline raw undici's own CPU`,
          },
        );
      }
      if (only("bullmq")) {
        const base = await rawOnce();
        shapeA ??= await shape(rx, "A", deliveries);
        const m = await bullmq(rx, deliveries);
        figures.push(
          {
            name: "BullMQ sender, shape A's deliveries",
            value: m.rate,
            unit: "deliveries/s",
            baseline: base.rate,
            ratio: m.rate / base.rate,
            note: `${deliveries} jobs by addBulk (1,000 a call), Worker concurrency 50, undici Pool 50, attempts 6, redis without persistence; ${rawNote}`,
          },
          {
            name: "shape A ÷ BullMQ sender",
            value: shapeA.rate,
            unit: "deliveries/s",
            baseline: m.rate,
            ratio: shapeA.rate / m.rate,
            note: "goal ≥ 1.5; the same receiver, the same count, this run",
          },
          {
            name: "CPU per 1,000 deliveries, BullMQ (this process + redis-server)",
            value: m.cpuPer1000,
            unit: "CPU-s",
            baseline: shapeA.cpuPer1000,
            ratio: m.cpuPer1000 / shapeA.cpuPer1000,
            note: `baseline shape A's; ${s(m.secs)} s wall (addBulk ${s(m.emitSecs)} s), node ${s(m.cpu)} + redis ${s(m.redisCpu)} CPU-s = ${((m.cpu + m.redisCpu) / m.secs).toFixed(2)} cores, receiver ${s(m.rxCpu)} CPU-s`,
          },
        );
      }
      if (only("emit")) figures.push(...(await emitLatency(rx)));
      if (only("rate")) figures.push(...(await fixedRate(rx)));
      if (only("hanging")) figures.push(...(await hanging(rx)));
      if (only("backlog")) figures.push(...(await backlogMemory(rx)));
      return figures;
    } finally {
      await rx.stop();
    }
  },
} satisfies Bench;
