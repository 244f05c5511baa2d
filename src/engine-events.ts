/**
 * What the engine tells the rest of the process (metrics, logs, tests) about its work. Listeners
 * are called synchronously and may never break the engine: a listener that throws is ignored.
 */
import type { BreakerState, Priority } from "./models.js";

export type AttemptOutcome = "success" | "retry" | "dead_letter" | "failed";

export interface EngineEventMap {
  /** Deliveries written and handed to the queue (one event per emit or batch, per priority). */
  enqueued: { count: number; priority: Priority };
  /** Deliveries claimed from the queue by a worker. */
  dequeued: { count: number };
  /** One delivery attempt finished and its outcome was recorded. */
  attempt: {
    webhookId: string;
    deliveryId: string;
    event: string;
    attempt: number;
    outcome: AttemptOutcome;
    status: number | null;
    durationMs: number;
    errorType: string | null;
  };
  /** A webhook's circuit breaker changed state. */
  breaker: { webhookId: string; from: BreakerState; to: BreakerState };
  /** A webhook was disabled by the engine (410 Gone). */
  disabled: { webhookId: string; reason: string };
}

export type EngineEventName = keyof EngineEventMap;
type Listener<K extends EngineEventName> = (payload: EngineEventMap[K]) => void;

export class EngineEvents {
  #listeners: { [K in EngineEventName]?: Array<Listener<K>> } = {};

  on<K extends EngineEventName>(name: K, listener: Listener<K>): () => void {
    const list = (this.#listeners[name] ?? []) as Array<Listener<K>>;
    (this.#listeners as Record<string, unknown>)[name] = list;
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  emit<K extends EngineEventName>(name: K, payload: EngineEventMap[K]): void {
    const list = this.#listeners[name] as Array<Listener<K>> | undefined;
    if (!list) return;
    for (const listener of list) {
      try {
        listener(payload);
      } catch {
        // A broken listener must not turn a delivered webhook into a failed one.
      }
    }
  }
}
