import { afterEach, describe, expect, it } from "vitest";
import {
  type AttemptOutcome,
  type EngineEventMap,
  type EngineEventName,
  EngineEvents,
} from "../../src/engine-events.js";
import { type BreakerStateEntry, createMetrics, type Metrics, type QueueDepth } from "../../src/metrics.js";

/** CONTRACT §7, spelled out here rather than imported, so a typo in src cannot agree with itself. */
const SPEC_METRICS: Record<string, "counter" | "gauge" | "histogram"> = {
  webhook_deliveries_total: "counter",
  webhook_delivery_duration_seconds: "histogram",
  webhook_failures_total: "counter",
  webhook_queue_depth: "gauge",
  webhook_queue_enqueued_total: "counter",
  webhook_queue_dequeued_total: "counter",
  webhook_circuit_breaker_state: "gauge",
  webhook_circuit_breaker_opened_total: "counter",
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the text format: any line it cannot read fails the test. */
function parseExposition(text: string): {
  samples: Sample[];
  help: Map<string, string>;
  type: Map<string, string>;
} {
  const samples: Sample[] = [];
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      (meta[1] === "HELP" ? help : type).set(meta[2]!, meta[3]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: m[1]!, labels, value: parseValue(m[3]!, line) });
  }
  return { samples, help, type };
}

/** As Prometheus reads values (Go's ParseFloat): NaN and Inf in any case, e.g. prom-client's "Nan". */
function parseValue(text: string, line: string): number {
  if (/^nan$/i.test(text)) return Number.NaN;
  const inf = /^([+-]?)inf$/i.exec(text);
  if (inf) return inf[1] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n)) throw new Error(`bad value in: ${line}`);
  return n;
}

/** The value of the one sample matching name and labels exactly (on the given labels), or undefined. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = parseExposition(text).samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

function attempt(
  events: EngineEvents,
  outcome: AttemptOutcome,
  over: Partial<{ event: string; webhookId: string; durationMs: number; errorType: string | null }> = {},
): void {
  events.emit("attempt", {
    webhookId: over.webhookId ?? "whk_1",
    deliveryId: "dlv_1",
    event: over.event ?? "memory.created",
    attempt: 1,
    outcome,
    status: outcome === "success" ? 200 : 500,
    durationMs: over.durationMs ?? 100,
    errorType: over.errorType === undefined ? (outcome === "success" ? null : "http_status") : over.errorType,
  });
}

const open: Metrics[] = [];
function setup(
  opts: {
    depth?: () => Promise<QueueDepth>;
    breakers?: () => Promise<BreakerStateEntry[]>;
    timeoutMs?: number;
    errors?: string[];
  } = {},
): { events: EngineEvents; metrics: Metrics } {
  const events = new EngineEvents();
  const metrics = createMetrics({
    events,
    queueDepth: opts.depth ?? (async () => ({ high: 0, normal: 0, low: 0 })),
    ...(opts.breakers && { breakerStates: opts.breakers }),
    ...(opts.timeoutMs !== undefined && { collectTimeoutMs: opts.timeoutMs }),
    onCollectError: (source, err) => opts.errors?.push(`${source}: ${(err as Error).message}`),
  });
  open.push(metrics);
  return { events, metrics };
}
afterEach(() => {
  for (const m of open.splice(0)) m.close();
});

describe("createMetrics", () => {
  it("exposes every CONTRACT §7 metric with HELP and the right TYPE, in a parseable exposition", async () => {
    const { metrics } = setup();
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const { help, type, samples } = parseExposition(await metrics.render());
    for (const [name, kind] of Object.entries(SPEC_METRICS)) {
      expect(type.get(name), name).toBe(kind);
      expect(help.get(name), name).toBeTruthy();
    }
    // Node process metrics are there too: the worker-restart alert relies on this one.
    expect(type.get("process_start_time_seconds")).toBe("gauge");
    expect(samples.find((s) => s.name === "process_start_time_seconds")?.value).toBeGreaterThan(1.6e9);
  });

  it("counts attempts by event and outcome, times them, and classes failures by webhook id", async () => {
    const { events, metrics } = setup();
    const before = await metrics.render();
    expect(value(before, "webhook_deliveries_total", { status: "success" })).toBeUndefined();
    expect(value(before, "webhook_delivery_duration_seconds_count")).toBe(0);

    attempt(events, "success", { durationMs: 120 });
    attempt(events, "retry", {
      event: "sync.failed",
      webhookId: "whk_a",
      errorType: "timeout",
      durationMs: 30_000,
    });
    attempt(events, "retry", {
      event: "sync.failed",
      webhookId: "whk_a",
      errorType: "timeout",
      durationMs: 30_000,
    });
    attempt(events, "dead_letter", { event: "sync.failed", webhookId: "whk_a", errorType: "http_status" });
    attempt(events, "failed", { webhookId: "whk_b", errorType: null, durationMs: 3 });
    const after = await metrics.render();

    expect(value(after, "webhook_deliveries_total", { event: "memory.created", status: "success" })).toBe(1);
    expect(value(after, "webhook_deliveries_total", { event: "sync.failed", status: "retry" })).toBe(2);
    expect(value(after, "webhook_deliveries_total", { event: "sync.failed", status: "dead_letter" })).toBe(1);
    expect(value(after, "webhook_deliveries_total", { event: "memory.created", status: "failed" })).toBe(1);

    expect(value(after, "webhook_failures_total", { endpoint: "whk_a", error_type: "timeout" })).toBe(2);
    expect(value(after, "webhook_failures_total", { endpoint: "whk_a", error_type: "http_status" })).toBe(1);
    // A failure without a class still counts, under a bounded label value.
    expect(value(after, "webhook_failures_total", { endpoint: "whk_b", error_type: "other" })).toBe(1);
    // Success is not a failure.
    expect(value(after, "webhook_failures_total", { endpoint: "whk_1" })).toBeUndefined();

    expect(value(after, "webhook_delivery_duration_seconds_count")).toBe(5);
    expect(value(after, "webhook_delivery_duration_seconds_sum")).toBeCloseTo(0.12 + 60 + 0.1 + 0.003, 6);
    expect(value(after, "webhook_delivery_duration_seconds_bucket", { le: "0.005" })).toBe(1);
    expect(value(after, "webhook_delivery_duration_seconds_bucket", { le: "0.1" })).toBe(2);
    expect(value(after, "webhook_delivery_duration_seconds_bucket", { le: "0.25" })).toBe(3);
    expect(value(after, "webhook_delivery_duration_seconds_bucket", { le: "20" })).toBe(3);
    expect(value(after, "webhook_delivery_duration_seconds_bucket", { le: "30" })).toBe(5);
    expect(value(after, "webhook_delivery_duration_seconds_bucket", { le: "+Inf" })).toBe(5);
  });

  it("bounds the event label to the catalog plus webhook.test", async () => {
    const { events, metrics } = setup();
    attempt(events, "success", { event: "webhook.test" });
    attempt(events, "success", { event: "quota.exceeded" });
    attempt(events, "success", { event: "made.up" });
    attempt(events, "success", { event: "another.one" });
    const text = await metrics.render();
    expect(value(text, "webhook_deliveries_total", { event: "webhook.test" })).toBe(1);
    expect(value(text, "webhook_deliveries_total", { event: "quota.exceeded" })).toBe(1);
    expect(value(text, "webhook_deliveries_total", { event: "other" })).toBe(2);
    expect(text).not.toContain("made.up");
  });

  it("counts enqueued and dequeued deliveries", async () => {
    const { events, metrics } = setup();
    expect(value(await metrics.render(), "webhook_queue_enqueued_total")).toBe(0);
    events.emit("enqueued", { count: 3, priority: "high" });
    events.emit("enqueued", { count: 4, priority: "normal" });
    events.emit("dequeued", { count: 5 });
    const text = await metrics.render();
    expect(value(text, "webhook_queue_enqueued_total")).toBe(7);
    expect(value(text, "webhook_queue_dequeued_total")).toBe(5);
  });

  it("reads queue depth per priority from the callback at every scrape", async () => {
    let depth: QueueDepth = { high: 1, normal: 5, low: 2 };
    const { metrics } = setup({ depth: async () => depth });
    let text = await metrics.render();
    expect(value(text, "webhook_queue_depth", { priority: "high" })).toBe(1);
    expect(value(text, "webhook_queue_depth", { priority: "normal" })).toBe(5);
    expect(value(text, "webhook_queue_depth", { priority: "low" })).toBe(2);
    depth = { high: 0, normal: 12_345, low: 0 };
    text = await metrics.render();
    expect(value(text, "webhook_queue_depth", { priority: "high" })).toBe(0);
    expect(value(text, "webhook_queue_depth", { priority: "normal" })).toBe(12_345);
  });

  it("drops the depth series, reports the error and still answers when the callback fails or hangs", async () => {
    const errors: string[] = [];
    let mode: "ok" | "fail" | "hang" = "ok";
    const { metrics } = setup({
      errors,
      timeoutMs: 50,
      depth: () => {
        if (mode === "fail") return Promise.reject(new Error("database is down"));
        if (mode === "hang") return new Promise<QueueDepth>(() => {});
        return Promise.resolve({ high: 9, normal: 9, low: 9 });
      },
    });
    expect(value(await metrics.render(), "webhook_queue_depth", { priority: "low" })).toBe(9);
    mode = "fail";
    let text = await metrics.render();
    expect(value(text, "webhook_queue_depth", { priority: "low" })).toBeUndefined();
    expect(text).toContain("# TYPE webhook_deliveries_total counter");
    mode = "hang";
    text = await metrics.render();
    expect(value(text, "webhook_queue_depth", { priority: "low" })).toBeUndefined();
    expect(errors).toEqual(["queueDepth: database is down", "queueDepth: timed out after 50 ms"]);
  });

  it("follows breaker transitions (0 closed, 1 half_open, 2 open) and counts openings", async () => {
    const { events, metrics } = setup();
    const state = async () =>
      value(await metrics.render(), "webhook_circuit_breaker_state", { webhook_id: "whk_x" });
    const opened = async () => value(await metrics.render(), "webhook_circuit_breaker_opened_total");
    expect(await opened()).toBe(0);

    events.emit("breaker", { webhookId: "whk_x", from: "closed", to: "open" });
    expect(await state()).toBe(2);
    expect(await opened()).toBe(1);
    events.emit("breaker", { webhookId: "whk_x", from: "open", to: "half_open" });
    expect(await state()).toBe(1);
    expect(await opened()).toBe(1);
    events.emit("breaker", { webhookId: "whk_x", from: "half_open", to: "open" });
    expect(await state()).toBe(2);
    expect(await opened()).toBe(2);
    events.emit("breaker", { webhookId: "whk_x", from: "open", to: "half_open" });
    events.emit("breaker", { webhookId: "whk_x", from: "half_open", to: "closed" });
    expect(await state()).toBe(0);
    expect(await opened()).toBe(2);

    events.emit("breaker", { webhookId: "whk_x", from: "closed", to: "open" });
    events.emit("disabled", { webhookId: "whk_x", reason: "410 Gone" });
    expect(await state()).toBeUndefined();
  });

  it("takes breaker states from the shared store when given a callback", async () => {
    let states: BreakerStateEntry[] = [
      { webhookId: "whk_a", state: "open" },
      { webhookId: "whk_b", state: "half_open" },
    ];
    const { events, metrics } = setup({ breakers: async () => states });
    let text = await metrics.render();
    expect(value(text, "webhook_circuit_breaker_state", { webhook_id: "whk_a" })).toBe(2);
    expect(value(text, "webhook_circuit_breaker_state", { webhook_id: "whk_b" })).toBe(1);

    // Another worker closed whk_a: the store is the truth, and this process's events do not matter.
    events.emit("breaker", { webhookId: "whk_c", from: "closed", to: "open" });
    states = [{ webhookId: "whk_b", state: "closed" }];
    text = await metrics.render();
    expect(value(text, "webhook_circuit_breaker_state", { webhook_id: "whk_a" })).toBeUndefined();
    expect(value(text, "webhook_circuit_breaker_state", { webhook_id: "whk_b" })).toBe(0);
    expect(value(text, "webhook_circuit_breaker_state", { webhook_id: "whk_c" })).toBeUndefined();
    expect(value(text, "webhook_circuit_breaker_opened_total")).toBe(1);
  });

  it("keeps the last breaker states when the store cannot be read, and reports it", async () => {
    const errors: string[] = [];
    let fail = false;
    const { metrics } = setup({
      errors,
      breakers: async () => {
        if (fail) throw new Error("database is down");
        return [{ webhookId: "whk_a", state: "open" }];
      },
    });
    expect(value(await metrics.render(), "webhook_circuit_breaker_state", { webhook_id: "whk_a" })).toBe(2);
    fail = true;
    expect(value(await metrics.render(), "webhook_circuit_breaker_state", { webhook_id: "whk_a" })).toBe(2);
    expect(errors).toEqual(["breakerStates: database is down"]);
  });

  it("keeps two instances in one process apart, and stops listening once closed", async () => {
    const one = setup();
    const two = setup();
    one.events.emit("enqueued", { count: 2, priority: "low" });
    expect(value(await one.metrics.render(), "webhook_queue_enqueued_total")).toBe(2);
    expect(value(await two.metrics.render(), "webhook_queue_enqueued_total")).toBe(0);

    one.metrics.close();
    one.metrics.close();
    expect(() => one.events.emit("enqueued", { count: 1, priority: "low" })).not.toThrow();
    two.events.emit("enqueued", { count: 1, priority: "low" });
    expect(value(await two.metrics.render(), "webhook_queue_enqueued_total")).toBe(1);
    expect((await one.metrics.render()).trim()).toBe("");
  });

  it("unsubscribes every listener it added on close", () => {
    class CountingEvents extends EngineEvents {
      active = 0;
      override on<K extends EngineEventName>(name: K, listener: (p: EngineEventMap[K]) => void): () => void {
        this.active++;
        const off = super.on(name, listener);
        return () => {
          this.active--;
          off();
        };
      }
    }
    const events = new CountingEvents();
    const metrics = createMetrics({ events, queueDepth: async () => ({ high: 0, normal: 0, low: 0 }) });
    expect(events.active).toBe(5);
    metrics.close();
    expect(events.active).toBe(0);
  });
});
