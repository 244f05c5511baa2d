/**
 * `GET /health` and `GET /metrics`: one plugin, the same schemas and problem+json errors on
 * `serve` (beside the API) and on `worker` (on --metrics-port, alone).
 */
import type { FastifyPluginAsync } from "fastify";
import type { Engine } from "../engine.js";
import type { Logger } from "../logger.js";
import { createMetrics } from "../metrics.js";
import type { Store } from "../store/index.js";
import { checkHealth } from "./health.js";
import { HealthResponse, ref } from "./schemas.js";

export interface OpsDeps {
  store: Store;
  engine: Engine;
  logger: Logger;
}

export const opsRoutes: FastifyPluginAsync<OpsDeps> = async (app, deps) => {
  const metrics = createMetrics({
    events: deps.engine.events,
    queueDepth: () => deps.engine.queue.depth(),
    ...(deps.engine.worker ? { breakerStates: async () => deps.engine.worker?.breakerStates() ?? [] } : {}),
    onCollectError: (source, err) =>
      deps.logger.warn(
        { source, err: err instanceof Error ? err.message : String(err) },
        "metrics collection failed",
      ),
  });
  app.addHook("onClose", async () => metrics.close());

  app.get(
    "/health",
    {
      schema: {
        summary: "Service health",
        description: "503 when the database is unreachable; `degraded` lists its `reasons`. No key needed.",
        tags: ["operations"],
        security: [],
        response: { 200: ref(HealthResponse), 503: ref(HealthResponse) },
      },
    },
    async (_request, reply) => {
      const report = await checkHealth({ store: deps.store, engine: deps.engine, log: deps.logger });
      return reply.code(report.status === "unhealthy" ? 503 : 200).send(report);
    },
  );
  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics",
        tags: ["operations"],
        security: [],
        produces: ["text/plain"],
        response: {
          200: {
            description: "Prometheus text exposition format",
            content: { "text/plain": { schema: { type: "string" } } },
          },
        },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );
};
