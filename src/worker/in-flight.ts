/**
 * What this worker has in flight, by delivery and by webhook, and when each lease was last
 * extended: a lease is renewed once a third of it has gone by, so a long attempt never loses its
 * delivery to another claimer.
 */
import type { ClaimedDelivery } from "../queue/queue.js";

export class InFlight {
  readonly #byId = new Map<
    string,
    { delivery: ClaimedDelivery; renewedAt: number; abort: AbortController; answered: boolean }
  >();
  readonly #byHook = new Map<string, number>();

  get size(): number {
    return this.#byId.size;
  }

  count(webhookId: string): number {
    return this.#byHook.get(webhookId) ?? 0;
  }

  /** Returns the signal that cancels this attempt's request. */
  add(delivery: ClaimedDelivery, now: number): AbortSignal {
    const abort = new AbortController();
    this.#byId.set(delivery.id, { delivery, renewedAt: now, abort, answered: false });
    this.#byHook.set(delivery.webhookId, this.count(delivery.webhookId) + 1);
    return abort.signal;
  }

  has(deliveryId: string): boolean {
    return this.#byId.has(deliveryId);
  }

  /** The attempt is over; its outcome waits to be written (the slot stays taken until then). */
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
    const n = this.count(webhookId) - 1;
    if (n <= 0) this.#byHook.delete(webhookId);
    else this.#byHook.set(webhookId, n);
    return true;
  }

  deliveries(): ClaimedDelivery[] {
    return [...this.#byId.values()].map((f) => f.delivery);
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
