/**
 * The queue carries delivery ids and due times; the database is the truth. Every backend passes
 * the same conformance suite (test/integration/queue.test.ts).
 *
 * Work is claimed per webhook: the worker decides how many deliveries each webhook may have in
 * flight (its concurrency limit, its circuit breaker) and asks the queue for that many. A
 * saturated or broken webhook is simply not asked, so its backlog never stands in front of
 * anyone else's.
 */
import type { Priority } from "../models.js";

export interface QueueEntry {
  id: string;
  webhookId: string;
  /** 0 high, 1 normal, 2 low. */
  priority: number;
}

export interface ClaimedDelivery extends QueueEntry {
  event: string;
  /** The exact body to send; null when neither the delivery nor its event holds one any more. */
  payload: string | null;
  /** Attempts already made. */
  attempts: number;
}

export interface ClaimRequest {
  webhookId: string;
  /** How many this claimer can start now. */
  max: number;
  /** In-flight cap for the webhook across all claimers. */
  limit: number;
}

export interface DeliveryQueue {
  readonly kind: string;
  /** The rows are committed: make them claimable from `dueAt` (ms) and wake the workers. */
  enqueue(entries: readonly QueueEntry[], dueAt: number): Promise<void>;
  /** Webhooks that have work due at `now` (may include some that have none left). */
  readyWebhooks(now: number): Promise<string[]>;
  /**
   * For each request, up to `max` due deliveries of that webhook, highest priority first, then
   * oldest due; all requests in one round trip. `limit` caps that webhook's deliveries in flight
   * across EVERY claimer of the queue (its concurrency limit, or 1 for a circuit breaker's
   * probe): the queue counts what is leased and hands out only the difference. Each delivery is
   * hidden from every other claimer until `leaseUntil`; a claimer that dies simply lets the
   * lease run out, and the delivery is due again.
   */
  claim(requests: readonly ClaimRequest[], now: number, leaseUntil: number): Promise<ClaimedDelivery[]>;
  /** Keep deliveries that are still in flight hidden until `leaseUntil`. */
  extend(ids: readonly string[], leaseUntil: number): Promise<void>;
  /** Give claimed deliveries back, due at `dueAt`, without spending an attempt. */
  release(entries: readonly QueueEntry[], dueAt: number): Promise<void>;
  /** The outcome is committed: forget the entry, or keep it due at `nextDueAt` (a retry). */
  settle(entries: ReadonlyArray<{ entry: QueueEntry; nextDueAt: number | null }>): Promise<void>;
  /** Deliveries waiting (pending, or failed with a retry scheduled), by priority. */
  depth(): Promise<Record<Priority, number>>;
  /** Called with the webhooks that just got work; returns an unsubscribe function. */
  onWake(listener: (webhookIds: readonly string[]) => void): () => void;
  /** Backends with a server of their own (Redis) answer whether it is reachable. */
  ping?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Tells the queue about rows already committed, without making the caller wait for the queue's
 * server: a slow or stopped Redis delays delivery, never an emit or an API answer (CONTRACT §3).
 * What the queue misses, the workers' sweep finds in the database.
 */
export class Handoffs {
  readonly #running = new Set<Promise<void>>();

  constructor(private readonly queue: DeliveryQueue) {}

  send(entries: readonly QueueEntry[], dueAt: number): void {
    if (entries.length === 0) return;
    const handoff: Promise<void> = this.queue
      .enqueue(entries, dueAt)
      .catch(() => {}) // the queue logs its own failures; the rows stand
      .finally(() => this.#running.delete(handoff));
    this.#running.add(handoff);
  }

  /** Resolves once every hand-off so far has reached the queue or failed (close, tests). */
  async flush(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
  }
}

/** A tiny listener set shared by the queue implementations. */
export class WakeSignal {
  #listeners = new Set<(ids: readonly string[]) => void>();

  on(listener: (ids: readonly string[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  fire(ids: readonly string[]): void {
    for (const l of this.#listeners) l(ids);
  }
}
