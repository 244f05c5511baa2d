import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Config } from "../config.js";
import type { Engine } from "../engine.js";
import type { Logger } from "../logger.js";
import type { Store } from "../store/index.js";

export interface ServerDeps {
  store: Store;
  logger: Logger;
  engine: Engine;
  config: Readonly<Config>;
}

export interface HealthReport {
  status: "healthy" | "degraded" | "unhealthy";
  running: boolean;
  database: { ok: boolean; dialect: string; latency_ms: number; error?: string };
}

export async function checkHealth(store: Store): Promise<HealthReport> {
  const started = performance.now();
  try {
    await withTimeout(store.ping(), 2000);
    return {
      status: "healthy",
      running: true,
      database: { ok: true, dialect: store.dialect, latency_ms: Math.round(performance.now() - started) },
    };
  } catch (err) {
    return {
      status: "unhealthy",
      running: true,
      database: {
        ok: false,
        dialect: store.dialect,
        latency_ms: Math.round(performance.now() - started),
        error: err instanceof Error ? err.message : "unreachable",
      },
    };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
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

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
  });
  app.get("/health", async (_req, reply) => {
    const report = await checkHealth(deps.store);
    return reply.code(report.status === "unhealthy" ? 503 : 200).send(report);
  });
  return app;
}
