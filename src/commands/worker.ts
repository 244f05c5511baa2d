/**
 * `continuum-webhooks worker`: delivery workers without the API, for the distributed modes. It
 * serves its own /health and /metrics on --metrics-port, for the orchestrator and Prometheus.
 */
import Fastify from "fastify";
import { checkHealth } from "../api/health.js";
import type { Config } from "../config.js";
import { createEngine } from "../engine.js";
import { createLogger } from "../logger.js";
import { createMetrics } from "../metrics.js";
import { migrate, openStore } from "../store/index.js";
import { onShutdown, runReleasers, warnAllowTargets } from "./serve.js";

export async function worker(config: Readonly<Config>, opts: { migrate: boolean }): Promise<void> {
  const logger = createLogger(config.logLevel);
  const store = openStore({
    databaseUrl: config.databaseUrl,
    sqlitePath: config.sqlitePath,
    backgroundCheckpoint: true,
  });
  const releasers: Array<() => Promise<void>> = [() => store.close()];
  try {
    if (opts.migrate) await migrate(store);
    warnAllowTargets(logger, config);
    const engine = createEngine({ store, config, logger, workers: true });
    releasers.push(() => engine.close());
    const metrics = createMetrics({
      events: engine.events,
      queueDepth: () => engine.queue.depth(),
      breakerStates: async () => engine.worker?.breakerStates() ?? [],
    });
    releasers.push(async () => metrics.close());
    const app = Fastify();
    app.get("/health", async (_req, reply) => {
      const report = await checkHealth({ store, engine, log: logger });
      return reply.code(report.status === "unhealthy" ? 503 : 200).send(report);
    });
    app.get("/metrics", async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));
    releasers.push(() => app.close());
    await app.listen({ port: config.metricsPort, host: config.host });
    logger.info(
      { workers: config.workers, metrics_port: config.metricsPort, storage: store.location },
      "continuum-webhooks worker running",
    );
  } catch (err) {
    await runReleasers(releasers);
    throw err;
  }
  onShutdown(logger, config.drainTimeoutMs, () => runReleasers(releasers));
}
