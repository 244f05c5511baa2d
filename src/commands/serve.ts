import { buildServer } from "../api/server.js";
import type { Config } from "../config.js";
import { createEngine } from "../engine.js";
import { createLogger, type Logger } from "../logger.js";
import { createApiKey, migrate, openStore, type Store } from "../store/index.js";

export interface ServeOptions {
  migrate: boolean;
  workers: boolean;
}

export async function serve(config: Readonly<Config>, opts: ServeOptions): Promise<void> {
  const logger = createLogger(config.logLevel);
  const store = openStore({
    databaseUrl: config.databaseUrl,
    sqlitePath: config.sqlitePath,
    backgroundCheckpoint: true,
  });
  const releasers: Array<() => Promise<void>> = [() => store.close()];
  try {
    if (opts.migrate) {
      const { applied } = await migrate(store);
      if (applied.length > 0) logger.info({ applied }, "migrations applied");
    }
    warnAllowTargets(logger, config);
    await bootstrapAdminKey(store);

    const engine = createEngine({ store, config, logger, workers: opts.workers });
    releasers.push(() => engine.close());
    const app = await buildServer({ store, logger, engine, config });
    releasers.push(() => app.close());
    await app.listen({ port: config.port, host: config.host });
    logger.info(
      { port: config.port, host: config.host, storage: store.location },
      "continuum-webhooks serving",
    );
  } catch (err) {
    await runReleasers(releasers);
    throw err;
  }
  onShutdown(logger, config.drainTimeoutMs, () => runReleasers(releasers));
}

/** SPEC §5: an exemption from the SSRF rules is announced at every start. */
export function warnAllowTargets(logger: Logger, config: Readonly<Config>): void {
  if (config.allowTargets.length === 0) return;
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
