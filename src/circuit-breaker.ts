/**
 * Circuit breaker per webhook, as a pure state machine (CONTRACT §4):
 * CLOSED --threshold consecutive failures--> OPEN --cooldown--> HALF_OPEN (one probe)
 * HALF_OPEN --probe succeeds--> CLOSED; --probe fails--> OPEN again.
 * Where the state lives (memory, the database, Redis) is the caller's business.
 */
import type { BreakerState } from "./models.js";

export type { BreakerState };

export interface BreakerSnapshot {
  state: BreakerState;
  /** Consecutive failures since the last success. */
  failures: number;
  /** When the breaker last opened (ms since epoch), or null. */
  openedAt: number | null;
}

export interface BreakerRules {
  threshold: number;
  cooldownMs: number;
}

export const CLOSED: BreakerSnapshot = Object.freeze({ state: "closed", failures: 0, openedAt: null });

/**
 * The state as of `now`: an OPEN breaker whose cooldown has passed reads as HALF_OPEN. It is not
 * stored as such until the probe's outcome is recorded.
 */
export function currentState(b: BreakerSnapshot, rules: BreakerRules, now: number): BreakerState {
  if (b.state === "open" && b.openedAt !== null && now - b.openedAt >= rules.cooldownMs) return "half_open";
  return b.state;
}

/** How many requests may be in flight for this webhook right now. */
export function allowance(b: BreakerSnapshot, rules: BreakerRules, now: number, limit: number): number {
  switch (currentState(b, rules, now)) {
    case "closed":
      return limit;
    case "half_open":
      return 1;
    case "open":
      return 0;
  }
}

/** When an OPEN breaker lets its probe through (ms since epoch), or null when not open. */
export function probeAt(b: BreakerSnapshot, rules: BreakerRules): number | null {
  return b.state === "open" && b.openedAt !== null ? b.openedAt + rules.cooldownMs : null;
}

export function onSuccess(_b: BreakerSnapshot): BreakerSnapshot {
  return CLOSED;
}

export function onFailure(b: BreakerSnapshot, rules: BreakerRules, now: number): BreakerSnapshot {
  const failures = b.failures + 1;
  const state = currentState(b, rules, now);
  if (state === "half_open" || (state === "closed" && failures >= rules.threshold)) {
    return { state: "open", failures, openedAt: now };
  }
  return { ...b, failures };
}
