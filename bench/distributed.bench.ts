/**
 * Distributed mode: two `worker` processes at their DEFAULT settings (no WEBHOOK_WORKERS)
 * delivering from PostgreSQL, with the Redis queue and with the Postgres-only queue, to a receiver
 * process that verifies every signature. The baseline is raw undici POSTs of signed bodies to the
 * same receiver, in the same run (bench/raw.ts).
 *
 * "Where the time goes": CPU seconds each party used during a run (the two workers, the
 * producer in this process, the receiver, redis-server, every postgres process — PostgreSQL is
 * shared with whatever else runs on the machine), plus the producer's emit rate on its own.
 *
 * One hot webhook (issue 13): every event to one webhook, whose allowance is 10 in flight across
 * the fleet. Its rate is set against raw undici at 10 in flight; and since the receiver answers
 * each request within the turn its body arrived in (so it never sees more than one at once), a
 * second run goes to a path the receiver answers after BENCH_HOT_DELAY_MS, where the most and
 * the mean in flight it saw show whether the fleet uses the allowance, and never more.
 *
 *   BENCH_DIST_EVENTS   events per throughput run (× 50 webhooks = deliveries), default 400
 *   BENCH_HOT_EVENTS    events (= deliveries) per hot-webhook run, default 5000
 *   BENCH_HOT_DELAY_MS  the receiver's answer delay in the second hot run, default 10
 *   needs TEST_DATABASE_URL (PostgreSQL) and a `redis-server` binary; skipped without them
 *   parts, to run one alone: `npm run bench -- distributed:hot` (throughput, hot, stages)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config.js";
import { createEngine } from "../src/engine.js";
import { newId } from "../src/ids.js";
import { createLogger } from "../src/logger.js";
import { createPgQueue } from "../src/queue/pg-queue.js";
import type { DeliveryQueue } from "../src/queue/queue.js";
import { createRedisQueue } from "../src/queue/redis-queue.js";
import { migrate, type Outcome, openStore } from "../src/store/index.js";
import { freePort } from "../test/helpers/cli.js";
import { startRedisServer } from "../test/helpers/redis-server.js";
import { createPgSchema } from "../test/helpers/services.js";
import { cpuOf, ownCpu, postgresCpu, receiverCpu } from "./proc.js";
import { rawUndici } from "./raw.js";
import { ReceiverProcess, type ReceiverReport } from "./receiver-client.js";
import type { Bench, Figure } from "./types.js";

const WEBHOOKS = 50;
/** The throughput baseline's requests in flight (one Pool, as many connections). */
const RAW_IN_FLIGHT = 64;
/** The per-webhook allowance at the defaults (WEBHOOK_ENDPOINT_CONCURRENCY). */
const ALLOWANCE = 10;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "src/cli.ts", "worker", "--no-migrate", "--metrics-port", String(port)],
    { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "ignore", "inherit"] },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode})`);
    try {
      await fetch(`http://127.0.0.1:${port}/health`);
      return child;
    } catch {
      if (Date.now() > deadline) throw new Error("worker not ready");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

interface RunResult {
  rate: number;
  emitRate: number;
  secs: number;
  cpu: Record<string, number>;
  report: ReceiverReport;
  /** The receiver paths of the run's webhooks. */
  paths: string[];
}

/**
 * One run: fresh schema, two default workers, `events` × `webhooks` deliveries (one user, every
 * webhook on "*"), to paths under `prefix` on the receiver.
 */
async function run(
  rx: ReceiverProcess,
  opts: { events: number; webhooks: number; withRedis: boolean; prefix: string },
): Promise<RunResult> {
  const { events, webhooks, withRedis } = opts;
  const schema = await createPgSchema();
  const redis = withRedis ? await startRedisServer() : undefined;
  const store = openStore({ databaseUrl: schema.url, pgPoolSize: 8 });
  const workers: ChildProcess[] = [];
  try {
    await migrate(store);
    const common = { WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32", ...(redis ? { REDIS_URL: redis.url } : {}) };
    const producer = createEngine({
      store,
      config: loadConfig({ ...common, LOG_LEVEL: "silent" }),
      logger: createLogger("silent"),
      workers: false,
    });
    const secrets: Record<string, string> = {};
    for (let k = 0; k < webhooks; k++) {
      const path = `${opts.prefix}/${withRedis ? "r" : "p"}/h${k}`;
      secrets[path] = (
        await producer.manager.create("user0", { url: `${rx.url}${path}`, events: ["*"] })
      ).secret;
    }
    rx.setSecrets(secrets);
    const env = { ...common, DATABASE_URL: schema.url, LOG_LEVEL: "error" };
    workers.push(await startWorker(env), await startWorker(env));
    await rx.report(true);
    const cpu0 = {
      workers: workers.reduce((s, w) => s + cpuOf(w.pid), 0),
      receiver: receiverCpu(),
      redis: cpuOf(redis?.pid),
      postgres: postgresCpu(),
      producer: process.cpuUsage(),
    };
    const started = performance.now();
    for (let i = 0; i < events; i += 100) {
      await producer.emitter.emitBatch(
        Array.from({ length: Math.min(100, events - i) }, (_, j) => ({
          event: "memory.created",
          userId: "user0",
          data: { n: i + j },
        })),
      );
    }
    const emitSecs = (performance.now() - started) / 1000;
    const total = events * webhooks;
    const r = await rx.waitFor(total, 600_000);
    const secs = (performance.now() - started) / 1000;
    const cpu = {
      workers: workers.reduce((s, w) => s + cpuOf(w.pid), 0) - cpu0.workers,
      producer: ownCpu(cpu0.producer),
      receiver: receiverCpu() - cpu0.receiver,
      redis: cpuOf(redis?.pid) - cpu0.redis,
      postgres: postgresCpu() - cpu0.postgres,
    };
    if (r.verified < total || r.rejected > 0) {
      throw new Error(`distributed run: ${r.verified}/${total} verified, ${r.rejected} bad`);
    }
    await producer.close();
    return {
      rate: total / secs,
      emitRate: total / emitSecs,
      secs,
      cpu,
      report: r,
      paths: Object.keys(secrets),
    };
  } finally {
    for (const w of workers) w.kill("SIGKILL");
    await store.close();
    await redis?.stop();
    await schema.drop();
  }
}

/**
 * Each stage of a delivery's life alone, without HTTP, one process: emit, claim (rounds of 10
 * per webhook, the cap), record the outcome (batches of 200, as the worker does), settle.
 */
async function stages(withRedis: boolean, events: number): Promise<Record<string, number>> {
  const schema = await createPgSchema();
  const redis = withRedis ? await startRedisServer() : undefined;
  const store = openStore({ databaseUrl: schema.url, pgPoolSize: 8 });
  try {
    await migrate(store);
    if (store.dialect !== "postgres") throw new Error("expected PostgreSQL");
    const engine = store.engine;
    const queue: DeliveryQueue = redis
      ? createRedisQueue({ url: redis.url, store, owner: "bench", worker: false })
      : createPgQueue(store, "bench", { listen: false });
    const now = new Date().toISOString();
    const hooks: string[] = [];
    for (let k = 0; k < WEBHOOKS; k++) {
      const w = {
        id: newId("whk"),
        userId: "u",
        url: `http://127.0.0.1:9/h${k}`,
        secret: "s",
        events: ["*"],
        now,
      };
      hooks.push((await store.webhooks.insert(w)).id);
    }
    const time: Record<string, number> = { emit: 0, claim: 0, record: 0, settle: 0 };
    const timed = async <T>(stage: string, fn: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      const out = await fn();
      time[stage]! += performance.now() - t;
      return out;
    };
    for (let i = 0; i < events; i += 100) {
      const rows = Array.from({ length: Math.min(100, events - i) }, (_, j) => ({
        eventId: newId("evt"),
        userId: "u",
        event: "memory.created",
        body: JSON.stringify({ n: i + j }),
        priority: 1,
        priorityName: "normal" as const,
        idempotencyKey: null,
        newDeliveryId: () => newId("dlv"),
      }));
      await timed("emit", async () => {
        const at = Date.now();
        const writes = await engine.emit(
          rows,
          new Date(at).toISOString(),
          new Date(at - 86_400_000).toISOString(),
        );
        await queue.enqueue(
          writes.flatMap((w) => w.entries),
          at,
        );
      });
    }
    const total = events * WEBHOOKS;
    for (let done = 0; done < total; ) {
      const at = Date.now();
      const requests = hooks.map((webhookId) => ({ webhookId, max: 10, limit: 10 }));
      const got = await timed("claim", () => queue.claim(requests, at, at + 60_000));
      if (got.length === 0) throw new Error(`stages: nothing to claim after ${done} of ${total}`);
      for (let k = 0; k < got.length; k += 200) {
        const part = got.slice(k, k + 200);
        const iso = new Date().toISOString();
        const outcomes = part.map(
          (d): Outcome => ({
            deliveryId: d.id,
            webhookId: d.webhookId,
            event: d.event,
            priority: d.priority,
            attempt: 1,
            attemptedAt: iso,
            status: "success",
            nextRetryAt: null,
            responseCode: 200,
            responseBody: "ok",
            durationMs: 1,
            completedAt: iso,
            errorType: null,
            errorMessage: null,
            attempted: true,
          }),
        );
        await timed("record", () =>
          engine.recordOutcomes({
            leaseOwner: "bench",
            requireEngineLock: true,
            outcomes,
            breakers: [],
            disabled: [],
          }),
        );
        await timed("settle", () => queue.settle(part.map((entry) => ({ entry, nextDueAt: null }))));
      }
      done += got.length;
    }
    await queue.close();
    return Object.fromEntries(
      Object.entries(time).map(([k, ms]) => [k, ms > 0 ? total / (ms / 1000) : Number.NaN]),
    );
  } finally {
    await store.close();
    await redis?.stop();
    await schema.drop();
  }
}

const cpuNote = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(", ");

const MODES = [
  ["PostgreSQL + Redis", true],
  ["Postgres-only queue", false],
] as const;

async function throughput(rx: ReceiverProcess, events: number): Promise<Figure[]> {
  const total = events * WEBHOOKS;
  const runs = [];
  for (const [name, withRedis] of MODES) {
    runs.push({ name, r: await run(rx, { events, webhooks: WEBHOOKS, withRedis, prefix: "" }) });
  }
  const raw = await rawUndici(rx, { bodies: total, paths: WEBHOOKS, inFlight: RAW_IN_FLIGHT });
  return runs.flatMap(({ name, r }): Figure[] => [
    {
      name: `e2e throughput, ${name}, 2 workers (50 webhooks)`,
      value: r.rate,
      unit: "deliveries/s",
      baseline: raw.rate,
      ratio: r.rate / raw.rate,
      note: `${total} verified deliveries, 2 workers at defaults; baseline raw undici, ${RAW_IN_FLIGHT} in flight; CPU s: ${cpuNote(r.cpu)}`,
    },
    {
      name: `emit into PostgreSQL, ${name} (producer alone)`,
      value: r.emitRate,
      unit: "deliveries/s",
      baseline: null,
      ratio: null,
      note: "100 events × 50 subscribers per emitBatch, while the workers deliver",
    },
  ]);
}

async function hot(rx: ReceiverProcess): Promise<Figure[]> {
  const events = Number(process.env.BENCH_HOT_EVENTS ?? 5000);
  const delayMs = Number(process.env.BENCH_HOT_DELAY_MS ?? 10);
  const delayed = `/delay/${delayMs}`;
  const figures: Figure[] = [];
  const rawFast = await rawUndici(rx, { bodies: events, paths: 1, inFlight: ALLOWANCE, tag: "hot" });
  const rawSlow = await rawUndici(rx, {
    bodies: events,
    paths: 1,
    inFlight: ALLOWANCE,
    tag: "hot",
    prefix: delayed,
  });
  for (const [name, withRedis] of MODES) {
    const fast = await run(rx, { events, webhooks: 1, withRedis, prefix: "/hot" });
    const slow = await run(rx, { events, webhooks: 1, withRedis, prefix: `${delayed}/hot` });
    const path = slow.paths[0]!;
    const max = slow.report.maxInFlight[path] ?? 0;
    const mean = (slow.report.busyMs[path] ?? 0) / (slow.secs * 1000);
    figures.push(
      {
        name: `hot webhook, ${name}, 2 workers`,
        value: fast.rate,
        unit: "deliveries/s",
        baseline: rawFast.rate,
        ratio: fast.rate / rawFast.rate,
        note: `goal ≥ 0.3; ${events} events to one webhook, 2 workers at defaults; baseline raw undici, ${ALLOWANCE} in flight (Pool of ${ALLOWANCE}); CPU s: ${cpuNote(fast.cpu)}`,
      },
      {
        name: `hot webhook, most in flight at the receiver, ${name}, 2 workers`,
        value: max,
        unit: "requests",
        baseline: ALLOWANCE,
        ratio: max / ALLOWANCE,
        note: `goal exactly ${ALLOWANCE}, never more; receiver answers after ${delayMs} ms; mean in flight ${mean.toFixed(1)}; ${slow.rate.toFixed(0)}/s vs raw undici at ${ALLOWANCE} in flight ${rawSlow.rate.toFixed(0)}/s (${(slow.rate / rawSlow.rate).toFixed(2)})`,
      },
    );
  }
  return figures;
}

async function stageFigures(events: number): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const [name, withRedis] of [
    ["Redis queue", true],
    ["Postgres-only queue", false],
  ] as const) {
    const rates = await stages(withRedis, events);
    for (const [stage, rate] of Object.entries(rates)) {
      if (!withRedis && stage === "settle") continue; // a no-op there
      figures.push({
        name: `stage alone: ${stage}, ${name}`,
        value: rate,
        unit: "deliveries/s",
        baseline: null,
        ratio: null,
        note: "one process, no HTTP",
      });
    }
  }
  return figures;
}

export default {
  name: "distributed",
  async run(only = () => true) {
    if (!process.env.TEST_DATABASE_URL) {
      process.stderr.write("distributed: skipped (set TEST_DATABASE_URL, and have redis-server on PATH)\n");
      return [];
    }
    const events = Number(process.env.BENCH_DIST_EVENTS ?? 400);
    const rx = await ReceiverProcess.start();
    try {
      // Warm-up (JIT, connections, the receiver), not measured.
      await rawUndici(rx, { bodies: 5000, paths: 10, inFlight: RAW_IN_FLIGHT, tag: "warm" });
      return [
        ...(only("throughput") ? await throughput(rx, events) : []),
        ...(only("hot") ? await hot(rx) : []),
        ...(only("stages") ? await stageFigures(events) : []),
      ];
    } finally {
      await rx.stop();
    }
  },
} satisfies Bench;
