/**
 * The rule that keeps slow endpoints from taking a process's whole delivery capacity, however
 * many there are (CONTRACT §4, no head-of-line blocking at the defaults).
 *
 * A webhook is *proven* while its last answer (any HTTP status) came within `slowMs` and none of
 * its requests in flight has run longer than that. Every other webhook — new, slow, hanging,
 * timing out — is *unproven*, and the unproven together hold at most half the capacity; past that,
 * each may still have one request in flight (its probe), so a new endpoint that is in fact healthy
 * proves itself with its first answer and from then on uses any free slot. So however many
 * endpoints hang, the healthy ones keep at least half the capacity, less one slot per hanging
 * endpoint beyond that half.
 */
import type { InFlight } from "./in-flight.js";

export class SlowLane {
  /** When each webhook last answered, and how long that answer took. */
  readonly #answers = new Map<string, { at: number; ms: number }>();
  readonly #budget: number;

  constructor(
    readonly capacity: number,
    private readonly slowMs: number,
  ) {
    this.#budget = Math.max(1, Math.floor(capacity / 2));
  }

  /** An attempt of `webhookId` got an answer (or timed out) after `durationMs`. */
  answered(webhookId: string, durationMs: number, now: number): void {
    this.#answers.delete(webhookId); // re-insert: the map stays in answer order for pruning
    this.#answers.set(webhookId, { at: now, ms: durationMs });
    if (this.#answers.size > 100_000) {
      const oldest = this.#answers.keys().next().value;
      if (oldest !== undefined) this.#answers.delete(oldest);
    }
  }

  proven(webhookId: string, inflight: InFlight, now: number): boolean {
    const last = this.#answers.get(webhookId);
    if (!last || last.ms >= this.slowMs) return false;
    const oldest = inflight.oldestStart(webhookId);
    return oldest === null || now - oldest < this.slowMs;
  }

  /** Requests in flight for unproven webhooks, now. */
  unprovenInFlight(inflight: InFlight, now: number): number {
    let n = 0;
    for (const webhookId of inflight.webhooks()) {
      if (!this.proven(webhookId, inflight, now)) n += inflight.count(webhookId);
    }
    return n;
  }

  /**
   * How many more an unproven webhook holding `held` may start, when the unproven together hold
   * `unproven`: the budget's remainder, and at least its one probe.
   */
  room(held: number, unproven: number): number {
    return Math.max(this.#budget - unproven, held === 0 ? 1 : 0);
  }
}
