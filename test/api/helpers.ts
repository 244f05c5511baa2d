/**
 * An API over a fresh test engine, with two user keys and an admin key, and helpers to inject
 * requests and count rows.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { buildServer, type ServerDeps } from "../../src/api/server.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import type { Store } from "../../src/store/index.js";
import { createApiKey } from "../../src/store/index.js";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";

export interface TestApi {
  app: FastifyInstance;
  te: TestEngine;
  store: Store;
  keys: { alice: string; bob: string; admin: string };
  /** Log lines at warn level and above (pino JSON). */
  logs: string[];
  /** Lines logged at error level or above: a request reached the catch-all 500 handler. */
  errors(): Array<Record<string, unknown>>;
  /** Inject with `key` as the bearer token (none when null). */
  call(key: string | null, opts: InjectOptions): Promise<LightMyRequestResponse>;
  counts(): Promise<{ webhooks: number; deliveries: number; events: number; attempts: number }>;
  cleanup(): Promise<void>;
}

export async function startApi(
  opts: {
    workers?: boolean;
    rateLimit?: ServerDeps["rateLimit"];
    auth?: ServerDeps["auth"];
    beforeReady?: (app: FastifyInstance) => void;
    /** Serve with this store instead of the engine's (a broken one, for /health). */
    store?: Store;
  } = {},
): Promise<TestApi> {
  const te = await startTestEngine({ workers: opts.workers ?? false });
  const now = new Date().toISOString();
  const alice = await createApiKey(te.store, { userId: "alice", role: "user", now });
  const bob = await createApiKey(te.store, { userId: "bob", role: "user", now });
  const admin = await createApiKey(te.store, { userId: "admin", role: "admin", now });
  const logs: string[] = [];
  const app = await buildServer({
    store: opts.store ?? te.store,
    logger: createLogger("warn", { write: (line: string) => logs.push(line) }),
    engine: te.engine,
    config: loadConfig({}),
    ...(opts.rateLimit === undefined ? {} : { rateLimit: opts.rateLimit }),
    ...(opts.auth === undefined ? {} : { auth: opts.auth }),
  });
  opts.beforeReady?.(app);
  await app.ready();
  const store = te.store;
  return {
    app,
    te,
    store,
    keys: { alice: alice.key, bob: bob.key, admin: admin.key },
    logs,
    errors: () =>
      logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => Number(l.level) >= 50),
    call(key, inject) {
      const headers = { ...(inject.headers ?? {}) } as Record<string, string>;
      if (key !== null) headers.authorization = `Bearer ${key}`;
      return app.inject({ ...inject, headers });
    },
    async counts() {
      const count = async (
        table: "webhooks" | "webhook_deliveries" | "webhook_events" | "webhook_delivery_attempts",
      ) => {
        const r = await store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .executeTakeFirstOrThrow();
        return Number(r.n);
      };
      return {
        webhooks: await count("webhooks"),
        deliveries: await count("webhook_deliveries"),
        events: await count("webhook_events"),
        attempts: await count("webhook_delivery_attempts"),
      };
    },
    async cleanup() {
      await app.close();
      await te.cleanup();
    },
  };
}

/** A webhook body pointing at 127.0.0.1 (allowed in tests) on `port`. */
export function hookBody(port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { url: `http://127.0.0.1:${port}/hook`, events: ["memory.created"], ...extra };
}

export function json<T = Record<string, unknown>>(res: LightMyRequestResponse): T {
  return res.json() as T;
}
