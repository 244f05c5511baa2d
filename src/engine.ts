/**
 * Wires the delivery engine for one process: store → emitter → queue → worker → dispatcher,
 * and the manager beside them. Nothing here is a module-level singleton, so a test can run two
 * engines side by side.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { type Clock, systemClock } from "./clock.js";
import { type Config, ConfigError } from "./config.js";
import { Emitter } from "./emitter.js";
import { EngineEvents } from "./engine-events.js";
import { createDeliveryClient, type DeliveryClient } from "./http-client.js";
import type { Logger } from "./logger.js";
import { WebhookManager } from "./manager.js";
import { createPgQueue } from "./queue/pg-queue.js";
import { type DeliveryQueue, Handoffs } from "./queue/queue.js";
import { createRedisQueue } from "./queue/redis-queue.js";
import { createSqliteQueue } from "./queue/sql-queue.js";
import { purgeExpired } from "./stats.js";
import type { EngineStatements, Store } from "./store/index.js";
import { DeliveryWorker } from "./worker/worker.js";

export type EngineConfig = Pick<
  Config,
  | "workers"
  | "timeoutMs"
  | "environment"
  | "allowTargets"
  | "retrySchedule"
  | "breakerThreshold"
  | "breakerCooldownMs"
  | "endpointConcurrency"
  | "retentionDays"
  | "drainTimeoutMs"
> &
  Partial<Pick<Config, "retryJitter">> &
  // Optional, so a library user's hand-written config keeps compiling: absent means no Redis.
  Partial<Pick<Config, "redisUrl">>;

export interface EngineOptions {
  store: Store;
  config: EngineConfig;
  logger: Logger;
  /** Run delivery workers in this process (false for API-only processes). */
  workers: boolean;
  clock?: Clock;
  client?: DeliveryClient;
  events?: EngineEvents;
  sweepIntervalMs?: number;
}

export interface Engine {
  readonly emitter: Emitter;
  readonly manager: WebhookManager;
  readonly queue: DeliveryQueue;
  readonly engineStore: EngineStatements;
  readonly events: EngineEvents;
  readonly worker: DeliveryWorker | null;
  readonly clock: Clock;
  /** Stop workers (gracefully), timers and the HTTP client. Callable twice. */
  close(): Promise<void>;
}

export function createEngine(options: EngineOptions): Engine {
  const { store, config, logger } = options;
  const clock = options.clock ?? systemClock;
  const events = options.events ?? new EngineEvents();
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  if (store.dialect === "sqlite" && config.redisUrl) {
    // Embedded mode delivers from the SQLite file in one process: Redis would be ignored, and
    // an operator who set it most likely meant the distributed mode and forgot DATABASE_URL.
    throw new ConfigError(
      "REDIS_URL",
      "the Redis queue needs PostgreSQL: set DATABASE_URL, or unset REDIS_URL",
    );
  }
  const engineStore = store.engine;
  const queue =
    store.dialect === "sqlite"
      ? createSqliteQueue(store, owner)
      : config.redisUrl
        ? createRedisQueue({
            url: config.redisUrl,
            store,
            owner,
            worker: options.workers,
            clock,
            log: logger,
          })
        : createPgQueue(store, owner, { listen: options.workers });
  const client =
    options.client ??
    createDeliveryClient({
      timeoutMs: config.timeoutMs,
      allowTargets: config.allowTargets,
      environment: config.environment,
      // One pool per webhook, sized for its in-flight limit.
      connectionsPerOrigin: config.endpointConcurrency,
    });
  const worker = options.workers
    ? new DeliveryWorker({
        engineStore,
        queue,
        client,
        events,
        logger,
        clock,
        owner,
        workers: config.workers,
        endpointConcurrency: config.endpointConcurrency,
        retrySchedule: config.retrySchedule,
        retryJitter: config.retryJitter ?? 0,
        breaker: { threshold: config.breakerThreshold, cooldownMs: config.breakerCooldownMs },
        timeoutMs: config.timeoutMs,
        drainTimeoutMs: config.drainTimeoutMs,
        heartbeats: store.workers,
        ...(options.sweepIntervalMs === undefined ? {} : { sweepIntervalMs: options.sweepIntervalMs }),
      })
    : null;
  const handoffs = new Handoffs(queue);
  const emitter = new Emitter({ engineStore, handoffs, clock, events });
  const manager = new WebhookManager({
    store,
    engineStore,
    handoffs,
    client,
    clock,
    environment: config.environment,
    allowTargets: config.allowTargets,
    breakerCooldownMs: config.breakerCooldownMs,
    onChange: (id) => worker?.invalidate(id),
  });

  let purgeTimer: unknown;
  const purge = () => {
    purgeExpired(store, { now: clock.now(), retentionDays: config.retentionDays, pauseMs: 10 })
      .then((n) => {
        if (n.deliveries + n.events > 0) logger.info(n, "purged expired delivery history");
      })
      .catch((err: unknown) => logger.error({ err: String(err) }, "retention purge failed"))
      .finally(() => {
        if (purgeTimer !== null) purgeTimer = clock.setTimeout(purge, 3_600_000);
      });
  };
  if (worker) {
    worker.start();
    purgeTimer = clock.setTimeout(purge, 60_000);
  }

  let closed: Promise<void> | undefined;
  return {
    emitter,
    manager,
    queue,
    engineStore,
    events,
    worker,
    clock,
    close() {
      closed ??= (async () => {
        clock.clearTimeout(purgeTimer);
        purgeTimer = null;
        // Side by side: a frozen queue server must not eat into the drain budget.
        await Promise.all([handoffs.flush(), worker?.stop()]);
        await queue.close();
        if (!options.client) await client.close();
      })();
      return closed;
    },
  };
}
