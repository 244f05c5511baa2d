/**
 * What this worker has in flight, by delivery and by webhook, and when each lease was last
 * extended: a lease is renewed once a third of it has gone by, so a long attempt never loses its
 * delivery to another claimer.
 */
import type { ClaimedDelivery } from "../queue/queue.js";

export class InFlight {
  readonly #byId = new Map<
    string,
    {
      delivery: ClaimedDelivery;
      startedAt: number;
      renewedAt: number;
      abort: AbortController;
      answered: boolean;
    }
  >();
  readonly #byHook = new Map<string, Set<string>>();

  get size(): number {
    return this.#byId.size;
  }

  count(webhookId: string): number {
    return this.#byHook.get(webhookId)?.size ?? 0;
  }

  /** The webhook's attempts that have their answer (their outcomes wait to be written). */
  answeredCount(webhookId: string): number {
    let n = 0;
    for (const id of this.#byHook.get(webhookId) ?? []) if (this.#byId.get(id)?.answered) n++;
    return n;
  }

  /** Webhooks with something in flight. */
  webhooks(): IterableIterator<string> {
    return this.#byHook.keys();
  }

  /** When the longest-running request of the webhook still waiting for its answer started. */
  oldestStart(webhookId: string): number | null {
    let oldest: number | null = null;
    for (const id of this.#byHook.get(webhookId) ?? []) {
      const f = this.#byId.get(id);
      if (f && !f.answered && (oldest === null || f.startedAt < oldest)) oldest = f.startedAt;
    }
    return oldest;
  }

  /** Returns the signal that cancels this attempt's request. */
  add(delivery: ClaimedDelivery, now: number): AbortSignal {
    const abort = new AbortController();
    this.#byId.set(delivery.id, { delivery, startedAt: now, renewedAt: now, abort, answered: false });
    let ids = this.#byHook.get(delivery.webhookId);
    if (!ids) {
      ids = new Set();
      this.#byHook.set(delivery.webhookId, ids);
    }
    ids.add(delivery.id);
    return abort.signal;
  }

  /** The attempt is over; its outcome waits to be written (the slot is held until then). */
  answered(deliveryId: string): void {
    const f = this.#byId.get(deliveryId);
    if (f) f.answered = true;
  }

  /**
   * Cancels every request still waiting for its answer and forgets those deliveries; returns
   * them, to be given back. Answered ones stay: their outcomes are about to be written.
   */
  abortUnanswered(): ClaimedDelivery[] {
    const left: ClaimedDelivery[] = [];
    for (const f of [...this.#byId.values()]) {
      if (f.answered) continue;
      f.abort.abort(new Error("released at shutdown"));
      this.remove(f.delivery.id, f.delivery.webhookId);
      left.push(f.delivery);
    }
    return left;
  }

  /** False when it was not in flight (already removed). */
  remove(deliveryId: string, webhookId: string): boolean {
    if (!this.#byId.delete(deliveryId)) return false;
    const ids = this.#byHook.get(webhookId);
    ids?.delete(deliveryId);
    if (ids?.size === 0) this.#byHook.delete(webhookId);
    return true;
  }

  /** Ids whose lease is due for renewal at `now`; they count as renewed from now on. */
  dueForRenewal(now: number, leaseMs: number): string[] {
    const ids: string[] = [];
    for (const f of this.#byId.values()) {
      if (now - f.renewedAt > leaseMs / 3) {
        f.renewedAt = now;
        ids.push(f.delivery.id);
      }
    }
    return ids;
  }
}
