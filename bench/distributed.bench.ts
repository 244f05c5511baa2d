/**
 * Distributed mode: two `worker` processes delivering from PostgreSQL, with the Redis queue and
 * with the Postgres-only queue, to a receiver process that verifies every signature. The baseline
 * is raw undici POSTs of signed bodies to the same receiver, in the same run.
 *
 * "Where the time goes": CPU seconds each party used during a run (the two workers, the
 * producer in this process, the receiver, redis-server, every postgres process — PostgreSQL is
 * shared with whatever else runs on the machine), plus the producer's emit rate on its own.
 *
 *   BENCH_DIST_EVENTS   events per run (× 50 webhooks = deliveries), default 400
 *   needs TEST_DATABASE_URL (PostgreSQL) and a `redis-server` binary; skipped without them
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { loadConfig } from "../src/config.js";
import { createEngine } from "../src/engine.js";
import { newId } from "../src/ids.js";
import { createLogger } from "../src/logger.js";
import { createPgQueue } from "../src/queue/pg-queue.js";
import type { DeliveryQueue } from "../src/queue/queue.js";
import { createRedisQueue } from "../src/queue/redis-queue.js";
import { signBody } from "../src/signer.js";
import { migrate, type Outcome, openStore } from "../src/store/index.js";
import { freePort } from "../test/helpers/cli.js";
import { startRedisServer } from "../test/helpers/redis-server.js";
import { createPgSchema } from "../test/helpers/services.js";
import { ReceiverProcess } from "./receiver-client.js";
import type { Bench, Figure } from "./types.js";

const WEBHOOKS = 50;
const IN_FLIGHT = 64; // per worker process, and the baseline's connections
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TICK = 100; // clock ticks per second, for /proc/<pid>/stat

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

/** CPU seconds of every process `pgrep` finds with these arguments. */
function cpuOfAll(args: string[]): number {
  try {
    const pids = execFileSync("pgrep", args, { encoding: "utf8" }).trim().split("\n");
    return pids.reduce((s, p) => s + cpuOf(Number(p)), 0);
  } catch {
    return 0;
  }
}
const postgresCpu = () => cpuOfAll(["-x", "postgres"]);
/** The receiver is our child process running receiver-process.ts. */
const receiverCpu = () => cpuOfAll(["-P", String(process.pid), "-f", "receiver-process"]);

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
  cpu: Record<string, number>;
}

/** One run: fresh schema, two workers, `events` × WEBHOOKS deliveries. */
async function run(rx: ReceiverProcess, events: number, withRedis: boolean): Promise<RunResult> {
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
    for (let k = 0; k < WEBHOOKS; k++) {
      const path = `/${withRedis ? "r" : "p"}/h${k}`;
      secrets[path] = (
        await producer.manager.create("user0", { url: `${rx.url}${path}`, events: ["*"] })
      ).secret;
    }
    rx.setSecrets(secrets);
    const env = {
      ...common,
      DATABASE_URL: schema.url,
      WEBHOOK_WORKERS: String(IN_FLIGHT),
      LOG_LEVEL: "error",
    };
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
    const total = events * WEBHOOKS;
    const r = await rx.waitFor(total, 600_000);
    const secs = (performance.now() - started) / 1000;
    const producerCpu = process.cpuUsage(cpu0.producer);
    const cpu = {
      workers: workers.reduce((s, w) => s + cpuOf(w.pid), 0) - cpu0.workers,
      producer: (producerCpu.user + producerCpu.system) / 1e6,
      receiver: receiverCpu() - cpu0.receiver,
      redis: cpuOf(redis?.pid) - cpu0.redis,
      postgres: postgresCpu() - cpu0.postgres,
    };
    if (r.verified < total || r.rejected > 0) {
      throw new Error(`distributed run: ${r.verified}/${total} verified, ${r.rejected} bad`);
    }
    await producer.close();
    return { rate: total / secs, emitRate: total / emitSecs, cpu };
  } finally {
    for (const w of workers) w.kill("SIGKILL");
    await store.close();
    await redis?.stop();
    await schema.drop();
  }
}

/** Raw undici: the same number of signed bodies, IN_FLIGHT × 2 in flight, to the same receiver. */
async function rawUndici(rx: ReceiverProcess, bodies: number): Promise<number> {
  const secret = "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw=";
  const paths = Array.from({ length: WEBHOOKS }, (_, k) => `/raw/h${k}`);
  rx.setSecrets(Object.fromEntries(paths.map((p) => [p, secret])));
  const lanes = IN_FLIGHT * 2;
  const pool = new Pool(rx.url, { connections: lanes, pipelining: 1 });
  const body = JSON.stringify({
    id: "evt_x",
    event: "memory.created",
    created_at: "",
    user_id: "u",
    data: {},
  });
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < bodies) {
      const i = next++;
      const headers = signBody({
        secret,
        body,
        deliveryId: `dlv_${i}`,
        timestamp: Math.floor(Date.now() / 1000),
        event: "memory.created",
      });
      const res = await pool.request({ path: paths[i % paths.length]!, method: "POST", body, headers });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  const rate = bodies / ((performance.now() - started) / 1000);
  await pool.close();
  return rate;
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

export default {
  name: "distributed",
  async run() {
    if (!process.env.TEST_DATABASE_URL) {
      process.stderr.write("distributed: skipped (set TEST_DATABASE_URL, and have redis-server on PATH)\n");
      return [];
    }
    const events = Number(process.env.BENCH_DIST_EVENTS ?? 400);
    const total = events * WEBHOOKS;
    const rx = await ReceiverProcess.start();
    try {
      const redis = await run(rx, events, true);
      const pgOnly = await run(rx, events, false);
      const raw = await rawUndici(rx, total);
      const figure = (name: string, r: RunResult): Figure[] => [
        {
          name: `e2e throughput, ${name}, 2 workers (50 webhooks)`,
          value: r.rate,
          unit: "deliveries/s",
          baseline: raw,
          ratio: r.rate / raw,
          note: `${total} verified deliveries; CPU s: ${cpuNote(r.cpu)}`,
        },
        {
          name: `emit into PostgreSQL, ${name} (producer alone)`,
          value: r.emitRate,
          unit: "deliveries/s",
          baseline: null,
          ratio: null,
          note: "100 events × 50 subscribers per emitBatch, while the workers deliver",
        },
      ];
      const stageFigures: Figure[] = [];
      for (const [name, withRedis] of [
        ["Redis queue", true],
        ["Postgres-only queue", false],
      ] as const) {
        const rates = await stages(withRedis, events);
        for (const [stage, rate] of Object.entries(rates)) {
          if (!withRedis && stage === "settle") continue; // a no-op there
          stageFigures.push({
            name: `stage alone: ${stage}, ${name}`,
            value: rate,
            unit: "deliveries/s",
            baseline: null,
            ratio: null,
            note: "one process, no HTTP",
          });
        }
      }
      return [
        ...figure("PostgreSQL + Redis", redis),
        ...figure("Postgres-only queue", pgOnly),
        ...stageFigures,
      ];
    } finally {
      await rx.stop();
    }
  },
} satisfies Bench;
