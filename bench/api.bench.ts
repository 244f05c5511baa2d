/**
 * `POST /api/v1/events` (one event, a user with 5 subscribed webhooks) under autocannon on
 * 127.0.0.1, against a bare Fastify route that parses the same JSON and answers 202, measured in
 * the same run. The figure that matters is the ratio: what authentication, the rate limit, schema
 * validation and one durable SQLite transaction (the event and 5 deliveries) cost on top of Fastify.
 *
 * autocannon runs in a worker thread so that the load generator does not share the server's event
 * loop. Delivery workers are off for the headline figure (they would compete for the same CPU with
 * deliveries, not with ingest); a second figure runs them, delivering to a local receiver.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import Fastify, { type FastifyInstance } from "fastify";
import { buildServer } from "../src/api/server.js";
import { loadConfig } from "../src/config.js";
import { createEngine } from "../src/engine.js";
import { createLogger } from "../src/logger.js";
import { createApiKey, migrate, openStore } from "../src/store/index.js";
import type { Bench, Figure } from "./types.js";

/** Measured time per target, split into rounds that alternate with the baseline's. */
const DURATION_S = 10;
const ROUNDS = 4;
const WARMUP_S = 2;
const CONNECTIONS = 20;

const BODY = JSON.stringify({
  event: "memory.created",
  data: {
    memory_id: "mem_01JGTV5Q3K8ZB4N6Y2W0XR7M9E",
    content_preview:
      "Met Alice at the graph-theory conference; follow up on Eulerian paths in dynamic graphs",
    concepts: ["alice", "conference", "graph theory"],
    importance: 0.82,
  },
});

interface Load {
  requests: number;
  seconds: number;
  p99: number;
  non2xx: number;
}

async function load(url: string, headers: Record<string, string>, seconds: number): Promise<Load> {
  const r = await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: BODY,
    connections: CONNECTIONS,
    duration: seconds,
    workers: 1,
  });
  return { requests: r.requests.total, seconds: r.duration, p99: r.latency.p99, non2xx: r.non2xx + r.errors };
}

interface Summary {
  rps: number;
  /** Median of the rounds' p99, in ms. */
  p99: number;
  failed: number;
}

function summarize(rounds: Load[]): Summary {
  const p99s = rounds.map((l) => l.p99).sort((a, b) => a - b);
  return {
    rps: rounds.reduce((n, l) => n + l.requests, 0) / rounds.reduce((n, l) => n + l.seconds, 0),
    p99: p99s[Math.floor(p99s.length / 2)]!,
    failed: rounds.reduce((n, l) => n + l.non2xx, 0),
  };
}

/**
 * This machine is shared: load from elsewhere comes and goes. Alternating short rounds of the
 * target and the baseline exposes both to the same noise, so their ratio stays meaningful.
 */
async function versus(
  target: { url: string; headers: Record<string, string> },
  baseline: { url: string },
): Promise<{ target: Summary; baseline: Summary }> {
  await load(baseline.url, {}, WARMUP_S);
  await load(target.url, target.headers, WARMUP_S);
  const t: Load[] = [];
  const b: Load[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    b.push(await load(baseline.url, {}, DURATION_S / ROUNDS));
    t.push(await load(target.url, target.headers, DURATION_S / ROUNDS));
  }
  return { target: summarize(t), baseline: summarize(b) };
}

async function address(app: FastifyInstance): Promise<string> {
  await app.listen({ host: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

async function bare(): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  app.post("/api/v1/events", async (_request, reply) =>
    reply.code(202).send({ id: "evt_0", deliveries: 5, duplicate: false }),
  );
  const base = await address(app);
  return { url: `${base}/api/v1/events`, close: () => app.close() };
}

async function receiver(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function api(workers: boolean, receiverUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), "cw-bench-api-"));
  const store = openStore({ sqlitePath: join(dir, "bench.db") });
  await migrate(store);
  const config = loadConfig({ WEBHOOK_ALLOW_TARGETS: "127.0.0.1/32" });
  const logger = createLogger("silent");
  const engine = createEngine({ store, config, logger, workers });
  const { key } = await createApiKey(store, { userId: "bench", role: "user", now: new Date().toISOString() });
  for (let i = 0; i < 5; i++) {
    await engine.manager.create("bench", { url: `${receiverUrl}/hook/${i}`, events: ["memory.created"] });
  }
  // The rate limit stays on (it is part of the route's cost) with a budget the run cannot spend.
  const app = await buildServer({
    store,
    logger,
    engine,
    config,
    rateLimit: { max: 1e9, timeWindowMs: 60_000 },
  });
  const base = await address(app);
  return {
    url: `${base}/api/v1/events`,
    headers: { authorization: `Bearer ${key}` },
    async close() {
      await app.close();
      await engine.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const bench: Bench = {
  name: "api",
  async run(): Promise<Figure[]> {
    const rx = await receiver();
    const baseline = await bare();
    const closers: Array<() => Promise<void>> = [
      () => new Promise<void>((r) => rx.server.close(() => r())),
      () => baseline.close(),
    ];
    try {
      const ingest = await api(false, rx.url);
      closers.push(() => ingest.close());
      const run = await versus(ingest, baseline);
      // With workers, their backlog keeps draining between rounds and would slow the bare route
      // too: this run is measured alone and compared with the quiet baseline above.
      const delivering = await api(true, rx.url);
      closers.push(() => delivering.close());
      await load(delivering.url, delivering.headers, WARMUP_S);
      const withWorkers = summarize([await load(delivering.url, delivering.headers, DURATION_S)]);
      for (const [name, l] of [
        ["bare", run.baseline],
        ["api", run.target],
        ["api+workers", withWorkers],
      ] as const) {
        if (l.failed > 0) throw new Error(`${name}: ${l.failed} requests failed or were not 2xx`);
      }
      const note = `${CONNECTIONS} connections, 5 subscribers, ${ROUNDS}×${DURATION_S / ROUNDS} s alternating with the bare route`;
      const noteWorkers = `${CONNECTIONS} connections, 5 subscribers, ${DURATION_S} s, delivering to a local receiver in-process`;
      const b = run.baseline;
      return [
        {
          name: "api: POST /events throughput",
          value: run.target.rps,
          unit: "req/s",
          baseline: b.rps,
          ratio: run.target.rps / b.rps,
          note,
        },
        {
          name: "api: POST /events p99",
          value: run.target.p99,
          unit: "ms",
          baseline: b.p99,
          ratio: run.target.p99 / Math.max(b.p99, 1),
          note,
        },
        {
          name: "api: POST /events throughput, workers on",
          value: withWorkers.rps,
          unit: "req/s",
          baseline: b.rps,
          ratio: withWorkers.rps / b.rps,
          note: noteWorkers,
        },
        {
          name: "api: POST /events p99, workers on",
          value: withWorkers.p99,
          unit: "ms",
          baseline: b.p99,
          ratio: withWorkers.p99 / Math.max(b.p99, 1),
          note: noteWorkers,
        },
      ];
    } finally {
      while (closers.length > 0) await closers.pop()!();
    }
  },
};

export default bench;
