/**
 * The Prometheus metrics of CONTRACT §7, fed by the engine's events and, at scrape time, by callbacks
 * that read shared state (queue depth, breaker states) so every process reports the same truth.
 *
 * Each call builds its own Registry: two instances in one process (tests, serve + worker) never
 * clash, and nothing leaks into prom-client's global default registry.
 *
 * Semantics an operator needs to read the numbers:
 * - `webhook_deliveries_total{event,status}` counts delivery ATTEMPTS by what the attempt made of its
 *   delivery: `success` (2xx, delivery done), `retry` (failed, another attempt is scheduled),
 *   `dead_letter` (failed, no attempt left), `failed` (failed and the engine stopped the delivery,
 *   e.g. the webhook answered 410 Gone and was disabled). success + dead_letter + failed = finished
 *   deliveries; the sum over all statuses = attempts. The alerts' success rate is success / attempts.
 * - `webhook_circuit_breaker_state{webhook_id}`: 0 closed, 1 half_open, 2 open.
 * - `webhook_circuit_breaker_opened_total` counts every transition INTO open, including a failed
 *   half-open probe re-opening it.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { EngineEventMap, EngineEvents } from "./engine-events.js";
import { EVENT_TYPES, TEST_EVENT } from "./events.js";
import type { BreakerState, Priority } from "./models.js";

export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = Object.freeze({
  closed: 0,
  half_open: 1,
  open: 2,
});

/** 5 ms (a local receiver) up to the 30 s default request timeout; +Inf catches a raised timeout. */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30,
]);

export const ERROR_TYPES = ["dns", "refused_target", "timeout", "connection", "tls", "http_status"] as const;

const KNOWN_EVENTS: ReadonlySet<string> = new Set<string>([...EVENT_TYPES, TEST_EVENT]);
const KNOWN_ERROR_TYPES: ReadonlySet<string> = new Set<string>(ERROR_TYPES);
const PRIORITIES: readonly Priority[] = ["high", "normal", "low"];

export type QueueDepth = Record<Priority, number>;
export interface BreakerStateEntry {
  webhookId: string;
  state: BreakerState;
}

export interface MetricsOptions {
  events: EngineEvents;
  /** Read at every scrape: deliveries waiting per priority, from the shared queue/store. */
  queueDepth: () => Promise<QueueDepth>;
  /**
   * Read at every scrape when given: the breakers worth exporting, from the shared store, so every
   * process reports the breakers all workers share. Return the active webhooks whose breaker is
   * not closed (closed ones may be included and are exported as 0); the series of a webhook that
   * is no longer returned disappears. Without it the gauge follows this process's `breaker` events.
   */
  breakerStates?: () => Promise<BreakerStateEntry[]>;
  /** Told when a scrape-time callback fails or times out; the scrape itself still succeeds. */
  onCollectError?: (source: "queueDepth" | "breakerStates", err: unknown) => void;
  /** Upper bound on each scrape-time callback, so a hung database cannot hang `/metrics`. */
  collectTimeoutMs?: number;
  /** Node process metrics (process_start_time_seconds, memory, event loop…). Default true. */
  defaultMetrics?: boolean;
}

export interface Metrics {
  registry: Registry;
  contentType: string;
  render(): Promise<string>;
  /** Stops listening to the engine and empties the registry. Safe to call twice. */
  close(): void;
}

/** Unknown names collapse into `other`, so a producer bug cannot explode label cardinality. */
export function eventLabel(event: string): string {
  return KNOWN_EVENTS.has(event) ? event : "other";
}

export function errorTypeLabel(errorType: string | null): string {
  return errorType !== null && KNOWN_ERROR_TYPES.has(errorType) ? errorType : "other";
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  const timeoutMs = options.collectTimeoutMs ?? 2000;
  const reportError = (source: "queueDepth" | "breakerStates", err: unknown): void => {
    try {
      options.onCollectError?.(source, err);
    } catch {
      // A logging failure must not turn a scrape into a 500.
    }
  };

  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const deliveries = new Counter({
    name: "webhook_deliveries_total",
    help: "Delivery attempts by event type and outcome (success, retry, dead_letter, failed).",
    labelNames: ["event", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "webhook_delivery_duration_seconds",
    help: "Duration of each delivery attempt, from connect to the end of the response body.",
    buckets: [...DURATION_BUCKETS],
    registers: [registry],
  });
  const failures = new Counter({
    name: "webhook_failures_total",
    help: "Failed delivery attempts by webhook id (endpoint) and error class.",
    labelNames: ["endpoint", "error_type"] as const,
    registers: [registry],
  });
  const enqueued = new Counter({
    name: "webhook_queue_enqueued_total",
    help: "Deliveries handed to the queue.",
    registers: [registry],
  });
  const dequeued = new Counter({
    name: "webhook_queue_dequeued_total",
    help: "Deliveries claimed from the queue by a worker.",
    registers: [registry],
  });
  const breakerOpened = new Counter({
    name: "webhook_circuit_breaker_opened_total",
    help: "Circuit breaker transitions into the open state.",
    registers: [registry],
  });

  const queueDepth: Gauge<"priority"> = new Gauge({
    name: "webhook_queue_depth",
    help: "Deliveries waiting in the queue, by priority (read from the shared queue at scrape time).",
    labelNames: ["priority"] as const,
    registers: [registry],
    async collect() {
      try {
        const depth = await withTimeout(options.queueDepth(), timeoutMs);
        for (const priority of PRIORITIES) queueDepth.set({ priority }, depth[priority] ?? 0);
      } catch (err) {
        // A stale depth would hide a backlog; an absent series is what the alerts can see instead.
        queueDepth.reset();
        reportError("queueDepth", err);
      }
    },
  });

  const breakerStates = options.breakerStates;
  const breakerState: Gauge<"webhook_id"> = new Gauge({
    name: "webhook_circuit_breaker_state",
    help: "Circuit breaker state per webhook: 0 closed, 1 half_open, 2 open.",
    labelNames: ["webhook_id"] as const,
    registers: [registry],
    ...(breakerStates && {
      async collect() {
        try {
          const states = await withTimeout(breakerStates(), timeoutMs);
          breakerState.reset();
          for (const { webhookId, state } of states) {
            breakerState.set({ webhook_id: webhookId }, BREAKER_STATE_VALUE[state]);
          }
        } catch (err) {
          // Keep what the events last said: better a slightly stale breaker than none at all.
          reportError("breakerStates", err);
        }
      },
    }),
  });

  const onAttempt = (a: EngineEventMap["attempt"]): void => {
    deliveries.inc({ event: eventLabel(a.event), status: a.outcome });
    duration.observe(Math.max(0, a.durationMs) / 1000);
    if (a.outcome !== "success") {
      failures.inc({ endpoint: a.webhookId, error_type: errorTypeLabel(a.errorType) });
    }
  };
  const onBreaker = (b: EngineEventMap["breaker"]): void => {
    breakerState.set({ webhook_id: b.webhookId }, BREAKER_STATE_VALUE[b.to]);
    if (b.to === "open" && b.from !== "open") breakerOpened.inc();
  };

  const unsubscribe = [
    options.events.on("enqueued", (e) => enqueued.inc(Math.max(0, e.count))),
    options.events.on("dequeued", (e) => dequeued.inc(Math.max(0, e.count))),
    options.events.on("attempt", onAttempt),
    options.events.on("breaker", onBreaker),
    // A disabled webhook is never retried, so its breaker must not page anyone for the next hour.
    options.events.on("disabled", (d) => breakerState.remove({ webhook_id: d.webhookId })),
  ];

  let closed = false;
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close() {
      if (closed) return;
      closed = true;
      for (const off of unsubscribe) off();
      registry.clear();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
