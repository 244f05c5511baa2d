const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/**
 * `500ms`, `30s`, `5m`, `1h`, `1d`; a bare number means seconds (the seed's WEBHOOK_TIMEOUT=30).
 * Returns milliseconds, or null when the text is not a duration.
 */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[(m[2] ?? "s") as keyof typeof UNIT_MS];
  return Number.isFinite(ms) ? Math.round(ms) : null;
}

/** The shortest exact spelling of a duration: 300000 → "5m". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["d", UNIT_MS.d],
    ["h", UNIT_MS.h],
    ["m", UNIT_MS.m],
    ["s", UNIT_MS.s],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
