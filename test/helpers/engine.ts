import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../src/clock.js";
import { loadConfig } from "../../src/config.js";
import { createEngine, type Engine, type EngineConfig } from "../../src/engine.js";
import { createLogger } from "../../src/logger.js";
import { migrate, openStore, type Store } from "../../src/store/index.js";
import { createPgSchema } from "./services.js";

export interface TestEngine {
  engine: Engine;
  store: Store;
  config: EngineConfig;
  cleanup(): Promise<void>;
}

/** An embedded engine on a fresh SQLite file, allowed to deliver to 127.0.0.1 only. */
export async function startTestEngine(
  opts: {
    config?: Partial<EngineConfig>;
    clock?: Clock;
    workers?: boolean;
    sweepIntervalMs?: number;
    backend?: "sqlite" | "postgres";
  } = {},
): Promise<TestEngine> {
  const dir = mkdtempSync(join(tmpdir(), "cw-engine-"));
  const pg = opts.backend === "postgres" ? await createPgSchema() : undefined;
  const store = pg
    ? openStore({ databaseUrl: pg.url, pgPoolSize: 8 })
    : openStore({ sqlitePath: join(dir, "engine.db"), backgroundCheckpoint: true });
  await migrate(store);
  const config: EngineConfig = {
    ...loadConfig({
      WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32",
      WEBHOOK_TIMEOUT: "5s",
      WEBHOOK_DRAIN_TIMEOUT: "5s",
    }),
    ...opts.config,
  };
  const engine = createEngine({
    store,
    config,
    logger: createLogger("silent"),
    workers: opts.workers ?? true,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.sweepIntervalMs === undefined ? {} : { sweepIntervalMs: opts.sweepIntervalMs }),
  });
  return {
    engine,
    store,
    config,
    async cleanup() {
      await engine.close();
      await store.close();
      await pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A producer beside a `serve` child process: an engine without workers on the same SQLite file,
 * so the test emits and manages webhooks while the child delivers.
 */
export async function openProducer(
  sqlitePath: string,
): Promise<{ engine: Engine; store: Store; close(): Promise<void> }> {
  const store = openStore({ sqlitePath });
  await migrate(store);
  const engine = createEngine({
    store,
    config: loadConfig({ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32" }),
    logger: createLogger("silent"),
    workers: false,
  });
  return {
    engine,
    store,
    async close() {
      await engine.close();
      await store.close();
    },
  };
}
