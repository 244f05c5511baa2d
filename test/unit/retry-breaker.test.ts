import { describe, expect, it } from "vitest";
import {
  allowance,
  type BreakerSnapshot,
  CLOSED,
  currentState,
  onFailure,
  onSuccess,
  probeAt,
} from "../../src/circuit-breaker.js";
import { loadConfig } from "../../src/config.js";
import { honoursRetryAfter, nextRetryDelay, parseRetryAfter } from "../../src/retry.js";

const SCHEDULE = [1000, 5000, 30_000, 300_000, 1_800_000];

describe("retry schedule", () => {
  it("waits 1s, 5s, 30s, 5m, 30m after attempts 1 to 5, then gives up", () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => nextRetryDelay(n, SCHEDULE))).toEqual([
      1000,
      5000,
      30_000,
      300_000,
      1_800_000,
      null,
    ]);
  });

  it("honours Retry-After above the scheduled delay, capped at twice the delay", () => {
    expect(nextRetryDelay(2, SCHEDULE, { retryAfterMs: 8000 })).toBe(8000);
    expect(nextRetryDelay(2, SCHEDULE, { retryAfterMs: 60_000 })).toBe(10_000);
    expect(nextRetryDelay(2, SCHEDULE, { retryAfterMs: 1000 })).toBe(5000);
  });

  it("never lets Retry-After push a retry past one hour", () => {
    expect(nextRetryDelay(5, SCHEDULE, { retryAfterMs: 10 * 3_600_000 })).toBe(3_600_000);
  });

  it("spreads delays by the jitter fraction", () => {
    expect(nextRetryDelay(1, SCHEDULE, { jitter: 0.2, random: () => 0 })).toBe(800);
    expect(nextRetryDelay(1, SCHEDULE, { jitter: 0.2, random: () => 1 })).toBe(1200);
  });

  it("keeps the schedule exact by default, and spreads it by WEBHOOK_RETRY_JITTER when set", () => {
    const exact = loadConfig({});
    for (let n = 1; n <= 5; n++) {
      const delay = nextRetryDelay(n, exact.retrySchedule, {
        jitter: exact.retryJitter,
        random: Math.random,
      });
      expect(delay).toBe(exact.retrySchedule[n - 1]);
    }
    const { retrySchedule, retryJitter } = loadConfig({ WEBHOOK_RETRY_JITTER: "0.2" });
    expect(retryJitter).toBe(0.2);
    const delays = Array.from({ length: 200 }, () =>
      nextRetryDelay(3, retrySchedule, { jitter: retryJitter }),
    );
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(24_000);
      expect(d).toBeLessThanOrEqual(36_000);
    }
    // Spread, not shifted: deliveries that failed together come back at different times.
    expect(new Set(delays).size).toBeGreaterThan(50);
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect([429, 503, 500, 200].map(honoursRetryAfter)).toEqual([true, true, false, false]);
  });
});

describe("circuit breaker", () => {
  const rules = { threshold: 5, cooldownMs: 300_000 };
  const fail = (b: BreakerSnapshot, n: number, at: number) => {
    let s = b;
    for (let i = 0; i < n; i++) s = onFailure(s, rules, at);
    return s;
  };

  it("opens after the threshold of consecutive failures, not before", () => {
    expect(fail(CLOSED, 4, 0).state).toBe("closed");
    expect(fail(CLOSED, 5, 0)).toMatchObject({ state: "open", openedAt: 0 });
  });

  it("a success resets the count", () => {
    expect(fail(onSuccess(fail(CLOSED, 4, 0)), 4, 0).state).toBe("closed");
  });

  it("lets nothing through while open, one probe after the cooldown", () => {
    const open = fail(CLOSED, 5, 1000);
    expect(allowance(open, rules, 1000 + 299_999, 10)).toBe(0);
    expect(currentState(open, rules, 1000 + 300_000)).toBe("half_open");
    expect(allowance(open, rules, 1000 + 300_000, 10)).toBe(1);
    expect(probeAt(open, rules)).toBe(301_000);
    expect(allowance(CLOSED, rules, 0, 10)).toBe(10);
  });

  it("closes when the probe succeeds and reopens when it fails", () => {
    const open = fail(CLOSED, 5, 0);
    expect(onSuccess(open)).toEqual(CLOSED);
    const again = onFailure(open, rules, 400_000);
    expect(again).toMatchObject({ state: "open", openedAt: 400_000 });
    expect(allowance(again, rules, 400_001, 10)).toBe(0);
  });
});
