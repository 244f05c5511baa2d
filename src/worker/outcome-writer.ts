/**
 * Group commit for attempt outcomes: every result that arrives while a write is being prepared
 * or in progress goes into the next one, so the database sees a few large transactions instead
 * of one per delivery. A write that fails is retried with everything still in it: until it lands
 * the deliveries stay leased to this worker, so nothing is lost either way.
 */
import type { AttemptResult } from "../dispatcher.js";
import type { BreakerState } from "../models.js";
import type { EngineStatements, OutcomeBatch } from "../store/types.js";

/** Bounded, so one write never holds the event loop (and every emit behind it) for long. */
const MAX_WRITE_BATCH = 200;
const RETRY_MS = 500;

export interface OutcomeWriterOptions {
  engineStore: EngineStatements;
  owner: string;
  /** Called after each successful write with the results it carried. */
  onWritten(results: AttemptResult[]): void;
  onError(err: unknown): void;
  /** False once the worker has stopped for good: a failing write then gives up. */
  keepTrying(): boolean;
  /**
   * While this returns a promise (a claim in progress), no batch is taken: the claim may count
   * the results still waiting here as leases that are sure to be held until it lands.
   */
  hold?(): Promise<void> | undefined;
}

export class OutcomeWriter {
  #results: AttemptResult[] = [];
  #breakers = new Map<string, { state: BreakerState; openedAt: string | null }>();
  #disabled: Array<{ webhookId: string; reason: string; at: string }> = [];
  #writing: Promise<void> | undefined;

  constructor(private readonly o: OutcomeWriterOptions) {}

  /** Nothing waiting and nothing being written. */
  get idle(): boolean {
    return this.#results.length === 0 && this.#writing === undefined;
  }

  /** A breaker change not yet written (the stored state is then behind ours). */
  hasBreakerChange(webhookId: string): boolean {
    return this.#breakers.has(webhookId);
  }

  /** Per webhook, results not yet taken into a write: their deliveries are still leased. */
  waiting(): Map<string, number> {
    const n = new Map<string, number>();
    for (const r of this.#results) n.set(r.outcome.webhookId, (n.get(r.outcome.webhookId) ?? 0) + 1);
    return n;
  }

  add(result: AttemptResult): void {
    this.#results.push(result);
    this.#schedule();
  }

  breaker(webhookId: string, state: BreakerState, openedAt: string | null): void {
    this.#breakers.set(webhookId, { state, openedAt });
    this.#schedule();
  }

  disable(webhookId: string, reason: string, at: string): void {
    this.#disabled.push({ webhookId, reason, at });
    this.#schedule();
  }

  /** Writes everything waiting now (shutdown). */
  async drain(): Promise<void> {
    await this.#writing;
    if (!this.idle || this.#breakers.size > 0 || this.#disabled.length > 0) await this.#write();
  }

  #schedule(): void {
    // The write starts on the next turn, taking every result that arrived by then.
    this.#writing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.#write());
  }

  async #write(): Promise<void> {
    while (this.#results.length > 0 || this.#breakers.size > 0 || this.#disabled.length > 0) {
      for (let h = this.o.hold?.(); h; h = this.o.hold?.()) await h;
      const results = this.#results.slice(0, MAX_WRITE_BATCH);
      const batch: OutcomeBatch = {
        leaseOwner: this.o.owner,
        requireEngineLock: true,
        outcomes: results.map((r) => r.outcome),
        breakers: [...this.#breakers].map(([webhookId, b]) => ({ webhookId, ...b })),
        disabled: this.#disabled,
      };
      this.#results = this.#results.slice(results.length);
      this.#breakers = new Map();
      this.#disabled = [];
      try {
        await this.o.engineStore.recordOutcomes(batch);
      } catch (err) {
        this.o.onError(err);
        this.#results = results.concat(this.#results);
        for (const b of batch.breakers)
          if (!this.#breakers.has(b.webhookId)) this.#breakers.set(b.webhookId, b);
        this.#disabled = batch.disabled.concat(this.#disabled);
        await new Promise((r) => setTimeout(r, RETRY_MS));
        if (!this.o.keepTrying()) break;
        continue;
      }
      this.o.onWritten(results);
    }
    this.#writing = undefined;
  }
}
