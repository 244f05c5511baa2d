/**
 * One lifecycle for `serve` and `worker`: open the store, migrate, announce what is exempt from
 * the SSRF rules, start the engine, listen, and on SIGTERM/SIGINT undo all of it in reverse
 * order (graphile-worker's releasers). A failure during start-up undoes what had started.
 */
import type { FastifyInstance } from "fastify";
import { buildOpsServer, buildServer } from "../api/server.js";
import type { Config } from "../config.js";
import { createEngine } from "../engine.js";
import { createLogger, type Logger } from "../logger.js";
import { createApiKey, migrate, openStore, type Store } from "../store/index.js";
import { UsageError } from "./errors.js";

export interface ProcessOptions {
  /** serve: the API (and, unless `workers` is false, delivery); worker: delivery only. */
  role: "serve" | "worker";
  migrate: boolean;
  workers: boolean;
}

export interface RunningProcess {
  app: FastifyInstance;
  logger: Logger;
  /** Runs every releaser once, last started first. Callable twice. */
  stop(): Promise<void>;
}

export async function startProcess(config: Readonly<Config>, opts: ProcessOptions): Promise<RunningProcess> {
  const logger = createLogger(config.logLevel);
  const store = openStore({
    databaseUrl: config.databaseUrl,
    sqlitePath: config.sqlitePath,
    backgroundCheckpoint: true,
  });
  const releasers: Array<() => Promise<void>> = [() => store.close()];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= runReleasers(releasers);
    return stopped;
  };
  try {
    if (opts.migrate) {
      const { applied } = await migrate(store);
      if (applied.length > 0) logger.info({ applied }, "migrations applied");
    }
    if (opts.workers) announceAllowTargets(logger, config);
    if (opts.role === "serve") await bootstrapAdminKey(store);

    const engine = createEngine({ store, config, logger, workers: opts.workers });
    releasers.push(() => engine.close());
    const app =
      opts.role === "serve"
        ? await buildServer({ store, logger, engine, config })
        : await buildOpsServer({ store, logger, engine });
    releasers.push(() => app.close());
    const port = opts.role === "serve" ? config.port : config.metricsPort;
    await listen(app, port, config.host, opts.role);
    logger.info(
      opts.role === "serve"
        ? { port, host: config.host, storage: store.location, workers: opts.workers ? config.workers : 0 }
        : { workers: config.workers, metrics_port: port, storage: store.location },
      opts.role === "serve" ? "continuum-webhooks serving" : "continuum-webhooks worker running",
    );
    return { app, logger, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs the process until a signal: the CLI's `serve` and `worker`. */
export async function runUntilSignalled(config: Readonly<Config>, opts: ProcessOptions): Promise<void> {
  const running = await startProcess(config, opts);
  onShutdown(running.logger, config.drainTimeoutMs, running.stop);
}

/** A port already taken is a setting to change, named as the user would change it. */
async function listen(
  app: FastifyInstance,
  port: number,
  host: string,
  role: ProcessOptions["role"],
): Promise<void> {
  try {
    await app.listen({ port, host });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const setting = role === "serve" ? "--port / PORT" : "--metrics-port / METRICS_PORT";
    if (code === "EADDRINUSE") {
      throw new UsageError(
        `${host}:${port} is already in use: choose another port with ${setting}` +
          (role === "worker" ? " (each worker on one host needs its own)" : ""),
      );
    }
    if (code === "EACCES")
      throw new UsageError(`no permission to listen on ${host}:${port}: choose another ${setting}`);
    throw err;
  }
}

/**
 * Every process that delivers says at start which targets are exempt from the SSRF rules: an
 * exemption is for development and tests only (a warning), and a worker started without the
 * exemption its API process has refuses those targets (an info line says none are).
 */
export function announceAllowTargets(logger: Logger, config: Readonly<Config>): void {
  if (config.allowTargets.length === 0) {
    logger.info({ allow_targets: [] }, "SSRF rules apply to every target (WEBHOOK_ALLOW_TARGETS is not set)");
    return;
  }
  logger.warn(
    { allow_targets: config.allowTargets },
    "WEBHOOK_ALLOW_TARGETS exempts these addresses from SSRF protection: for development and tests only",
  );
}

/**
 * A fresh installation has no way in: print one admin key, once, so the quick start needs no
 * extra step. It goes to stderr as plain text, not into the JSON log stream.
 */
async function bootstrapAdminKey(store: Store): Promise<void> {
  if ((await store.apiKeys.countActive()) > 0) return;
  const { key } = await createApiKey(store, {
    userId: "admin",
    role: "admin",
    name: "bootstrap",
    now: new Date().toISOString(),
  });
  process.stderr.write(
    `\nNo API keys existed, so an admin key was created. It is shown only this once:\n\n  ${key}\n\n` +
      `Create more with: continuum-webhooks api-key create --user <id> [--admin]\n\n`,
  );
}

/** Releasers run last-in-first-out, each at most once, errors swallowed so the rest still run. */
export async function runReleasers(releasers: Array<() => Promise<void>>): Promise<void> {
  while (releasers.length > 0) {
    const release = releasers.pop()!;
    await release().catch(() => {});
  }
}

/** First SIGTERM/SIGINT drains gracefully within `drainMs`; a second exits at once. */
export function onShutdown(
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void },
  drainMs: number,
  shutdown: () => Promise<void>,
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal, drain_ms: drainMs }, "shutting down");
    const force = setTimeout(() => {
      logger.warn({ drain_ms: drainMs }, "drain timeout reached: exiting");
      process.exit(1);
    }, drainMs + 5000);
    force.unref();
    shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}
