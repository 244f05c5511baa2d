/**
 * `GET /health` (CONTRACT §7). The rules, from worst to best:
 *
 * - unhealthy (503): the database does not answer a ping within 2 s. Nothing can be accepted or
 *   delivered without it, so a load balancer should stop sending traffic here.
 * - degraded (200): the service works but needs a look: Redis does not answer (distributed mode),
 *   this process's workers are configured but not running (stopping), the worker's last sweep
 *   or write failed and no sweep has succeeded since (the worker clears its error on the next
 *   good sweep, about a second later), the queue depth could not be read, more than 10 000
 *   deliveries are waiting (the critical alert's threshold), or — in a process without workers
 *   of its own (`serve --no-workers`) — work is waiting and no worker process has sent a
 *   heartbeat in the last 15 s (`no_live_workers`: nothing is delivering).
 * - healthy (200) otherwise.
 *
 * `reasons` names the rules that fired, in words an operator can grep the runbooks for. The raw
 * error text stays in the logs: this endpoint needs no key, so it must not describe internals.
 */
import type { Engine } from "../engine.js";
import type { Priority } from "../models.js";
import type { Store } from "../store/index.js";

export const DEEP_QUEUE = 10_000;
const TIMEOUT_MS = 2000;

export interface HealthReport {
  status: "healthy" | "degraded" | "unhealthy";
  running: boolean;
  workers: number;
  /** Worker processes whose heartbeat is current, this one included (null when unknown). */
  workers_alive: number | null;
  queue_depth: Record<Priority, number> | null;
  worker_stats: { processed: number; successful: number; failed: number };
  reasons: string[];
  database: { ok: boolean; dialect: string; latency_ms: number; error?: string };
  /** The embedded and Postgres-only modes have no Redis; reported as null there. */
  redis: { ok: boolean } | null;
}

export interface HealthDeps {
  store: Store;
  engine?: Pick<Engine, "queue" | "worker"> & Partial<Pick<Engine, "clock">>;
  log?: { warn(o: object, m: string): void };
}

export async function checkHealth(deps: HealthDeps): Promise<HealthReport> {
  const { store, engine } = deps;
  const started = performance.now();
  const queuePing = engine?.queue.ping?.bind(engine.queue);
  const now = new Date(engine?.clock?.now() ?? Date.now()).toISOString();
  const [ping, depth, redis, alive] = await Promise.allSettled([
    withTimeout(store.ping(), TIMEOUT_MS),
    engine ? withTimeout(engine.queue.depth(), TIMEOUT_MS) : Promise.resolve(null),
    queuePing ? withTimeout(queuePing(), TIMEOUT_MS) : Promise.resolve(null),
    withTimeout(store.workers.alive(now), TIMEOUT_MS),
  ]);
  const latency = Math.round(performance.now() - started);
  const worker = engine?.worker?.health() ?? null;
  const reasons: string[] = [];
  const queueDepth = depth.status === "fulfilled" ? depth.value : null;

  let database: HealthReport["database"];
  if (ping.status === "fulfilled") {
    database = { ok: true, dialect: store.dialect, latency_ms: latency };
  } else {
    const timedOut = ping.reason instanceof TimeoutError;
    deps.log?.warn({ err: String(ping.reason) }, "health check: database ping failed");
    database = {
      ok: false,
      dialect: store.dialect,
      latency_ms: latency,
      error: timedOut ? `no answer within ${TIMEOUT_MS} ms` : "unreachable",
    };
    reasons.push("database_unreachable");
  }
  if (engine && depth.status === "rejected") reasons.push("queue_depth_unavailable");
  if (queueDepth && queueDepth.high + queueDepth.normal + queueDepth.low > DEEP_QUEUE)
    reasons.push("queue_deep");
  if (worker && !worker.running) reasons.push("workers_stopped");
  if (worker?.last_error) reasons.push("worker_error");
  const workersAlive = alive.status === "fulfilled" ? alive.value : null;
  const waiting = queueDepth ? queueDepth.high + queueDepth.normal + queueDepth.low : 0;
  if (engine && !engine.worker && waiting > 0 && workersAlive === 0) reasons.push("no_live_workers");
  // Degraded, not unhealthy: emits still land in the database, and the recovery sweep re-queues
  // them once Redis is back.
  const redisOk = queuePing ? redis.status === "fulfilled" : null;
  if (redisOk === false) reasons.push("redis_unreachable");

  return {
    status: !database.ok ? "unhealthy" : reasons.length > 0 ? "degraded" : "healthy",
    // The process answers, so it runs; with workers, only if they are running too.
    running: worker ? worker.running : true,
    workers: worker?.workers ?? 0,
    workers_alive: workersAlive,
    queue_depth: queueDepth,
    worker_stats: worker?.stats ?? { processed: 0, successful: 0, failed: 0 },
    reasons,
    database,
    redis: redisOk === null ? null : { ok: redisOk },
  };
}

class TimeoutError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new TimeoutError(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
