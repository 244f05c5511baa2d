/**
 * The worker's memory of each webhook's circuit breaker. The stored breaker (on the webhook row)
 * is the one every process shares; this memory leads it only by transitions whose write has not
 * landed yet, and is replaced by the stored one whenever the webhook is read again.
 */
import {
  allowance,
  type BreakerRules,
  type BreakerSnapshot,
  CLOSED,
  currentState,
  onFailure,
  onSuccess,
  probeAt,
} from "../circuit-breaker.js";
import type { BreakerState, WebhookRecord } from "../models.js";

export interface BreakerChange {
  from: BreakerState;
  to: BreakerState;
  openedAt: string | null;
}

function fromRecord(hook: WebhookRecord, now: number): BreakerSnapshot {
  if (hook.breakerState === "closed") return { ...CLOSED, failures: hook.failureCount };
  return {
    state: "open",
    failures: hook.failureCount,
    openedAt: hook.breakerOpenedAt ? Date.parse(hook.breakerOpenedAt) : now,
  };
}

export class BreakerMemory {
  readonly #snapshots = new Map<string, BreakerSnapshot>();

  constructor(private readonly rules: BreakerRules) {}

  #get(hook: WebhookRecord, now: number): BreakerSnapshot {
    let b = this.#snapshots.get(hook.id);
    if (!b) {
      b = fromRecord(hook, now);
      this.#snapshots.set(hook.id, b);
    }
    return b;
  }

  /** The webhook was read fresh: take the shared state. */
  adopt(hook: WebhookRecord, now: number): void {
    this.#snapshots.set(hook.id, fromRecord(hook, now));
  }

  forget(webhookId: string): void {
    this.#snapshots.delete(webhookId);
  }

  /** How many may be in flight now: the concurrency limit, 1 for a due probe, 0 while open. */
  allowance(hook: WebhookRecord, now: number, concurrency: number): number {
    return allowance(this.#get(hook, now), this.rules, now, concurrency);
  }

  /** When an open breaker lets its probe through; null when it is not open. */
  probeAt(hook: WebhookRecord, now: number): number | null {
    return probeAt(this.#get(hook, now), this.rules);
  }

  /** Records an attempt's result; returns the transition it caused, if any. */
  record(hook: WebhookRecord, success: boolean, now: number): BreakerChange | null {
    const before = this.#get(hook, now);
    const after = success ? onSuccess(before) : onFailure(before, this.rules, now);
    this.#snapshots.set(hook.id, after);
    const from = currentState(before, this.rules, now);
    if (after.state === before.state && from === after.state) return null;
    return {
      from,
      to: after.state,
      openedAt: after.openedAt === null ? null : new Date(after.openedAt).toISOString(),
    };
  }

  states(now: number): Array<{ webhookId: string; state: BreakerState }> {
    return [...this.#snapshots].map(([webhookId, b]) => ({
      webhookId,
      state: currentState(b, this.rules, now),
    }));
  }
}
