/**
 * Why this exists: the fault timeline of a campaign, as a pure function of its seed, mode and
 * length, so the same seed always gives the same timeline (printed with the results, and re-run
 * with the command the report prints). Executing it is inject.ts's job.
 *
 * Faults never overlap on one target (a process, a receiver, a webhook, the database link,
 * Redis); different targets overlap freely. Each run also gets one long pause of a delivering
 * process, as long as the lease (WEBHOOK_TIMEOUT + 60 s) plus 5 s when the run allows, otherwise
 * the longest the run allows, which the notes say.
 */
import type { ReceiverMode } from "./receivers.js";
import { createRng } from "./rng.js";

export type Fault =
  | { kind: "kill"; target: string; downMs: number }
  | { kind: "term"; target: string; downMs: number }
  | { kind: "pause"; target: string; ms: number; long: boolean }
  | { kind: "redis-restart"; downMs: number }
  | { kind: "db-cut"; ms: number }
  | { kind: "db-delay"; ms: number; latencyMs: number }
  | { kind: "db-stall"; ms: number }
  | { kind: "db-blackhole"; ms: number }
  | { kind: "receiver"; target: string; mode: ReceiverMode; ms: number }
  | { kind: "webhook-events"; target: string; events: string[] }
  | { kind: "webhook-url"; target: string; path: string }
  | { kind: "webhook-disable"; target: string; ms: number };

export type FaultKind = Fault["kind"];

export const FAULT_KINDS: readonly FaultKind[] = [
  "kill",
  "term",
  "pause",
  "redis-restart",
  "db-cut",
  "db-delay",
  "db-stall",
  "db-blackhole",
  "receiver",
  "webhook-events",
  "webhook-url",
  "webhook-disable",
];

export interface Scheduled {
  /** Milliseconds after the producer starts. */
  at: number;
  fault: Fault;
}

export interface PlanInput {
  seed: number;
  mode: "embedded" | "postgres" | "redis";
  seconds: number;
  /** Process names: "serve", "worker1", … */
  processes: readonly string[];
  /** Webhook names (their receivers have the same names). */
  webhooks: readonly string[];
  /** Event types the producer emits (what a PATCH may subscribe to). */
  eventTypes: readonly string[];
  leaseMs: number;
  heartbeatTtlMs: number;
  /** Mean gap between faults. */
  meanGapMs?: number;
  /** Kinds to leave out (the rest of the timeline is unchanged). */
  skip?: ReadonlySet<string>;
}

export interface Plan {
  faults: Scheduled[];
  notes: string[];
}

export function planFaults(input: PlanInput): Plan {
  const rng = createRng(input.seed).fork("faults");
  const end = input.seconds * 1000;
  const notes: string[] = [];
  const busyUntil = new Map<string, number>();
  const free = (key: string, at: number) => (busyUntil.get(key) ?? 0) <= at;
  const occupy = (key: string, until: number) => busyUntil.set(key, until + 500);
  const faults: Scheduled[] = [];
  const distributed = input.mode !== "embedded";
  const delivering = distributed ? input.processes.filter((p) => p !== "serve") : ["serve"];
  const urlVersion = new Map<string, number>();

  // The long pause: longer than the lease when the run is long enough.
  {
    const target = rng.pick(delivering);
    const at = Math.round(end * rng.between(0.08, 0.2));
    const want = input.leaseMs + 5000;
    // Too short a run for a full one: half the run (longer than the heartbeat in redis mode), so
    // the pause still leaves time for everything else.
    const fits = at + want <= end - 1000;
    const fallback = Math.max(end / 2, input.mode === "redis" ? input.heartbeatTtlMs + 3000 : 0);
    const ms = Math.round(fits ? want : Math.max(1000, Math.min(end - at - 1000, fallback)));
    if (!fits) {
      notes.push(
        `long pause of ${target} is ${(ms / 1000).toFixed(1)} s, shorter than the ${(input.leaseMs / 1000).toFixed(0)} s lease: ` +
          `the run is too short (--seconds ${Math.ceil((want + 1000) / 1000 / 0.8)} or more allows a full one)` +
          (input.mode === "redis" && ms > input.heartbeatTtlMs
            ? `; it is longer than the ${input.heartbeatTtlMs / 1000} s heartbeat, so its leases are reaped and handed out`
            : ""),
      );
    }
    faults.push({ at, fault: { kind: "pause", target, ms, long: true } });
    occupy(target, at + ms);
  }

  const weights: Array<readonly [FaultKind, number]> = [
    ["kill", 2],
    ["term", 1],
    ["pause", 1.5],
    ["receiver", 4],
    ["webhook-events", 0.8],
    ["webhook-url", 0.5],
    ["webhook-disable", 0.8],
  ];
  if (distributed) weights.push(["db-cut", 1], ["db-delay", 1], ["db-stall", 0.7], ["db-blackhole", 0.7]);
  if (input.mode === "redis") weights.push(["redis-restart", 1.5]);

  const gap = input.meanGapMs ?? 2000;
  for (
    let at = 1500 + Math.round(rng.exp(gap));
    at < end - 1500;
    at += Math.max(300, Math.round(rng.exp(gap)))
  ) {
    const kind = rng.weighted(weights);
    const room = end - at - 500;
    const dur = (lo: number, hi: number) => Math.round(Math.min(room, rng.between(lo, hi)));
    switch (kind) {
      case "kill":
      case "term":
      case "pause": {
        const candidates = input.processes.filter((p) => free(p, at));
        if (candidates.length === 0) continue;
        const target = rng.pick(candidates);
        if (kind === "pause") {
          const ms = dur(1000, Math.min(12_000, input.leaseMs - 5000));
          faults.push({ at, fault: { kind, target, ms, long: false } });
          occupy(target, at + ms);
        } else {
          const downMs = dur(200, 3000);
          faults.push({ at, fault: { kind, target, downMs } });
          occupy(target, at + downMs + 8000);
        }
        break;
      }
      case "redis-restart": {
        if (!free("redis", at)) continue;
        const downMs = dur(300, 5000);
        faults.push({ at, fault: { kind, downMs } });
        occupy("redis", at + downMs + 1000);
        break;
      }
      case "db-cut":
      case "db-stall":
      case "db-blackhole":
      case "db-delay": {
        if (!free("db", at)) continue;
        const ms = dur(500, kind === "db-delay" ? 6000 : 4000);
        if (kind === "db-delay") faults.push({ at, fault: { kind, ms, latencyMs: rng.int(100, 1500) } });
        else faults.push({ at, fault: { kind, ms } });
        occupy("db", at + ms);
        break;
      }
      case "receiver": {
        const candidates = input.webhooks.filter((w) => free(`rx:${w}`, at));
        if (candidates.length === 0) continue;
        const target = rng.pick(candidates);
        const flavour = rng.weighted([
          ["error", 3],
          ["slow", 3],
          ["hang", 2],
          ["reset", 2],
        ] as const);
        const mode: ReceiverMode =
          flavour === "error"
            ? { kind: "error", status: rng.pick([500, 502, 503]) }
            : flavour === "slow"
              ? { kind: "slow", ms: rng.int(600, 1500) }
              : { kind: flavour };
        const ms = dur(1000, 7000);
        faults.push({ at, fault: { kind, target, mode, ms } });
        occupy(`rx:${target}`, at + ms);
        break;
      }
      case "webhook-events":
      case "webhook-url":
      case "webhook-disable": {
        const candidates = input.webhooks.filter((w) => free(`wh:${w}`, at));
        if (candidates.length === 0) continue;
        const target = rng.pick(candidates);
        if (kind === "webhook-events") {
          const events = rng.chance(0.25)
            ? ["*"]
            : input.eventTypes.filter(() => rng.chance(0.4)).slice(0, 3);
          if (events.length === 0) events.push(rng.pick(input.eventTypes));
          faults.push({ at, fault: { kind, target, events } });
          occupy(`wh:${target}`, at + 1500);
        } else if (kind === "webhook-url") {
          const v = (urlVersion.get(target) ?? 0) + 1;
          urlVersion.set(target, v);
          faults.push({ at, fault: { kind, target, path: `/w/${target}/${v}` } });
          occupy(`wh:${target}`, at + 1500);
        } else {
          const ms = dur(1000, 5000);
          faults.push({ at, fault: { kind, target, ms } });
          occupy(`wh:${target}`, at + ms + 1000);
        }
        break;
      }
    }
  }
  faults.sort((a, b) => a.at - b.at);
  const skip = input.skip ?? new Set<string>();
  const kept = faults.filter(
    (f) => !skip.has(f.fault.kind) && !(f.fault.kind === "pause" && f.fault.long && skip.has("long-pause")),
  );
  if (kept.length < faults.length)
    notes.push(`${faults.length - kept.length} scheduled faults skipped (--skip ${[...skip].join(",")})`);
  return { faults: kept, notes };
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case "kill":
      return `SIGKILL ${f.target}, restart after ${s(f.downMs)}`;
    case "term":
      return `SIGTERM ${f.target} (graceful), restart ${s(f.downMs)} after it exits`;
    case "pause":
      return `SIGSTOP ${f.target} for ${s(f.ms)}${f.long ? " (long pause)" : ""}, then SIGCONT`;
    case "redis-restart":
      return `kill redis-server, restart it empty after ${s(f.downMs)}`;
    case "db-cut":
      return `cut PostgreSQL connections (reset + refuse) for ${s(f.ms)}`;
    case "db-delay":
      return `delay PostgreSQL traffic by ${f.latencyMs} ms for ${s(f.ms)}`;
    case "db-stall":
      return `stall PostgreSQL traffic silently (held, then released) for ${s(f.ms)}`;
    case "db-blackhole":
      return `blackhole PostgreSQL traffic silently (dropped; those connections stay dead) for ${s(f.ms)}`;
    case "receiver": {
      const m = f.mode;
      const what =
        m.kind === "error"
          ? `answer ${m.status}`
          : m.kind === "slow"
            ? `answer 200 after ~${m.ms} ms`
            : m.kind === "hang"
              ? "hang"
              : "reset connections";
      return `receiver ${f.target}: ${what} for ${s(f.ms)}`;
    }
    case "webhook-events":
      return `PATCH webhook ${f.target} events → ${JSON.stringify(f.events)}`;
    case "webhook-url":
      return `PATCH webhook ${f.target} url → …${f.path}`;
    case "webhook-disable":
      return `PATCH webhook ${f.target} active=false, re-enable after ${s(f.ms)}`;
  }
}
