/**
 * Pure retry rules (CONTRACT §4): attempt 1 at once, then the schedule; Retry-After on 429/503 may
 * push the next attempt later, but never past 2× the scheduled delay or one hour.
 */

const HOUR_MS = 3_600_000;

/**
 * Delay before the next attempt after `attemptsDone` attempts, or null when the schedule is
 * spent (the delivery becomes dead_letter). `jitter` (0..1, `config.retryJitter` from
 * WEBHOOK_RETRY_JITTER) spreads retries of many deliveries that failed together, so a recovering
 * endpoint is not hit by all of them at once: the delay is scaled by a factor in
 * [1 - jitter, 1 + jitter].
 */
export function nextRetryDelay(
  attemptsDone: number,
  schedule: readonly number[],
  opts: { retryAfterMs?: number | null; jitter?: number; random?: () => number } = {},
): number | null {
  const scheduled = schedule[attemptsDone - 1];
  if (scheduled === undefined) return null;
  let delay = scheduled;
  if (opts.jitter) {
    const r = (opts.random ?? Math.random)();
    delay = Math.round(delay * (1 - opts.jitter + 2 * opts.jitter * r));
  }
  if (opts.retryAfterMs !== undefined && opts.retryAfterMs !== null && opts.retryAfterMs > delay) {
    delay = Math.min(opts.retryAfterMs, 2 * scheduled, Math.max(HOUR_MS, scheduled));
  }
  return delay;
}

/**
 * Retry-After as milliseconds: delta-seconds or an HTTP date. Null when absent or unparseable;
 * a date in the past means 0.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/** Only these statuses make Retry-After count. */
export function honoursRetryAfter(status: number | undefined): boolean {
  return status === 429 || status === 503;
}
