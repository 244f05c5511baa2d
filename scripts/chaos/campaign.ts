/**
 * Why this exists: one campaign from start to verdict, for the CLI and the e2e test alike —
 * receivers up, the topology started, webhooks created, then the producer and the fault timeline
 * together for `seconds`, then heal, drain (bounded), read the database, check, clean up.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceApi } from "./api.js";
import { type CampaignOptions, rerunCommand } from "./args.js";
import { check, type Verdict } from "./checker.js";
import { openDbReader } from "./database.js";
import { planFaults, type Scheduled } from "./faults.js";
import type { RunHistory, WebhookHistory } from "./history.js";
import { Injector, type TimelineEntry } from "./inject.js";
import { EVENT_TYPES, Producer } from "./producer.js";
import { type ChaosReceiver, startChaosReceiver } from "./receivers.js";
import { createRng } from "./rng.js";
import { HEARTBEAT_TTL_MS, LEASE_MS, sleep, TIMEOUT_MS, Topology } from "./topology.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Three users; some webhooks take everything, some a few types. */
export const USERS: ReadonlyArray<readonly [string, number]> = [
  ["u1", 5],
  ["u2", 3],
  ["u3", 2],
];
export const WEBHOOK_PLAN: ReadonlyArray<{ name: string; userId: string; events: string[] }> = [
  { name: "a", userId: "u1", events: ["*"] },
  { name: "b", userId: "u1", events: ["memory.created", "sync.failed"] },
  { name: "c", userId: "u1", events: ["session.started", "memory.updated"] },
  { name: "d", userId: "u2", events: ["*"] },
  { name: "e", userId: "u2", events: ["memory.created"] },
  { name: "f", userId: "u3", events: ["quota.exceeded", "memory.created", "concept.discovered"] },
];
/** Events within this much of a webhook change are ambiguous for that webhook. */
export const AMBIGUITY_MS = 500;
const PRODUCER_KEYS = 4;
/** Healing (processes up, PATCHes answered) must be done within this. */
const HEAL_LIMIT_MS = 60_000;

export interface CampaignResult {
  options: CampaignOptions;
  rerun: string;
  planned: Scheduled[];
  notes: string[];
  executed: TimelineEntry[];
  verdict: Verdict;
  stats: {
    producerRequests: number;
    producerRetries: number;
    skippedTicks: number;
    /** How the emit requests were answered (status code, "timeout", "network error"). */
    emitAnswers: Record<string, number>;
    unplannedExits: number;
    healMs: number;
    statuses: Record<string, number>;
  };
  /** Logs (and the SQLite file) of the run, kept when it failed or with --keep (the PostgreSQL schema only with --keep). */
  runDir: string | null;
}

export async function runCampaign(
  o: CampaignOptions,
  log: (line: string) => void = () => {},
  onTopology?: (t: Topology) => void,
): Promise<CampaignResult> {
  if (o.build) {
    log("building dist/ (npm run build)");
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      {
        cwd: ROOT,
        stdio: "inherit",
      },
    );
  }
  const runDir = mkdtempSync(join(tmpdir(), `chaos-${o.mode}-${o.seed}-`));
  const notes: string[] = [];
  const receivers = new Map<string, ChaosReceiver>();
  const topology = new Topology({
    bin: o.bin,
    mode: o.mode,
    workers: o.workers,
    limit: o.limit,
    runDir,
    databaseUrl: o.databaseUrl,
    seed: o.seed,
    note: (line) => {
      injector?.log(line);
      log(line);
    },
  });
  onTopology?.(topology);
  // Whatever ends this process (a test runner's timeout included), no service process — a
  // SIGSTOPped one least of all — may outlive it.
  const killAll = () => topology.killNow();
  process.once("exit", killAll);
  let injector: Injector | undefined;
  let passed = false;
  try {
    for (const w of WEBHOOK_PLAN)
      receivers.set(w.name, await startChaosReceiver(w.name, { hangMs: TIMEOUT_MS + 1000 }));
    log(`preparing ${o.mode} storage in ${runDir}`);
    await topology.prepare();
    const [controlKey, ...producerKeys] = await Promise.all(
      ["chaos-control", ...Array.from({ length: PRODUCER_KEYS }, (_, i) => `chaos-producer-${i}`)].map(
        (name) => topology.createAdminKey(name),
      ),
    );
    log(
      `starting ${topology.o.mode === "embedded" ? "serve" : `serve --no-workers and ${o.workers} workers`}`,
    );
    await topology.start();
    const api = new ServiceApi(topology.apiUrl, controlKey!, (line) => injector?.log(line));

    const webhooks = new Map<string, WebhookHistory>();
    for (const plan of WEBHOOK_PLAN) {
      const rx = receivers.get(plan.name)!;
      const path = `/w/${plan.name}/0`;
      const { id, secret } = await api.createWebhook(plan.userId, `${rx.url}${path}`, plan.events);
      rx.secret = secret;
      webhooks.set(plan.name, {
        name: plan.name,
        id,
        userId: plan.userId,
        secret,
        initial: { active: true, events: plan.events, path },
        changes: [],
      });
    }

    const plan = planFaults({
      seed: o.seed,
      mode: o.mode,
      seconds: o.seconds,
      processes: topology.names,
      webhooks: WEBHOOK_PLAN.map((w) => w.name),
      eventTypes: EVENT_TYPES,
      leaseMs: LEASE_MS,
      heartbeatTtlMs: HEARTBEAT_TTL_MS,
      meanGapMs: o.gapMs,
      skip: new Set(o.skip),
    });
    notes.push(...plan.notes);
    notes.push(
      `events emitted within ${AMBIGUITY_MS} ms of a webhook change (first PATCH sent → answered) are ambiguous for that webhook: never unexpected there, and expected only if the database made a delivery for them`,
      `receivers in "hang" mode reset a request after ${(TIMEOUT_MS + 1000) / 1000} s (WEBHOOK_TIMEOUT + 1 s); senders give up at ${TIMEOUT_MS / 1000} s`,
    );

    const producer = new Producer({
      baseUrl: topology.apiUrl,
      keys: producerKeys,
      users: USERS,
      rate: o.rate,
      rng: createRng(o.seed).fork("producer"),
      keyPrefix: `chaos-${o.seed}`,
    });
    injector = new Injector({ topology, receivers, webhooks, api });
    const t0 = Date.now();
    log(`campaign: ${o.seconds} s of faults at ${o.rate} events/s, ${plan.faults.length} faults planned`);
    producer.start();
    injector.run(plan.faults, t0);
    const progress = setInterval(() => {
      const acked = producer.emits.filter((e) => e.ackedAt !== null).length;
      log(
        `t+${((Date.now() - t0) / 1000).toFixed(0)}s emitted ${producer.emits.length}, acknowledged ${acked}, outstanding ${producer.outstanding}`,
      );
    }, 10_000);
    await sleep(o.seconds * 1000);
    clearInterval(progress);

    producer.stopEmitting();
    log("healing");
    const healStarted = Date.now();
    const healProblems = await injector.heal(HEAL_LIMIT_MS);
    const healed = Date.now();
    const healMs = healed - healStarted;
    log(`healed in ${(healMs / 1000).toFixed(1)} s; draining (at most ${o.drainSeconds} s)`);
    const producerDone = producer.finish(Math.max(10_000, o.drainSeconds * 1000 - 5000));

    const reader = openDbReader(topology.storage!.direct);
    let drained = false;
    let lastDepth: number | null = null;
    let lastWaiting: number | null = null;
    let calm = 0;
    const deadline = healed + o.drainSeconds * 1000;
    while (Date.now() < deadline) {
      lastDepth = await api.queueDepth();
      lastWaiting = await reader.waiting().catch(() => null);
      if (producer.outstanding === 0 && lastDepth === 0 && lastWaiting === 0) {
        if (++calm >= 2) {
          drained = true;
          break;
        }
      } else calm = 0;
      await sleep(500);
    }
    const drainMs = Date.now() - healed;
    log(
      drained
        ? `drained in ${(drainMs / 1000).toFixed(1)} s`
        : `NOT drained after ${(drainMs / 1000).toFixed(0)} s`,
    );
    await producerDone;
    await sleep(1000); // trailing answers and outcome writes
    const db = await reader.read();
    await reader.close();

    const history: RunHistory = {
      mode: o.mode,
      limit: o.limit,
      ambiguityMs: AMBIGUITY_MS,
      webhooks: [...webhooks.values()],
      emits: producer.emits,
      receipts: [...receivers.values()].flatMap((rx) => rx.receipts),
      inFlight: Object.fromEntries([...receivers.values()].map((rx) => [rx.name, { ...rx.peak }])),
      db,
      drain: { drained, ms: drainMs, lastDepth, lastWaiting },
      healProblems,
    };
    const verdict = check(history);
    const statuses: Record<string, number> = {};
    for (const d of db.deliveries) statuses[d.status] = (statuses[d.status] ?? 0) + 1;
    passed = verdict.ok;
    return {
      options: o,
      rerun: rerunCommand(o),
      planned: plan.faults,
      notes,
      executed: injector.executed,
      verdict,
      stats: {
        producerRequests: producer.requests,
        producerRetries: producer.retries,
        skippedTicks: producer.skippedTicks,
        emitAnswers: producer.answers,
        unplannedExits: topology.unplannedExits,
        healMs,
        statuses,
      },
      runDir: passed && !o.keep ? null : runDir,
    };
  } finally {
    process.off("exit", killAll);
    await topology
      .stop({ dropStorage: !o.keep })
      .catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
    await Promise.all([...receivers.values()].map((rx) => rx.close()));
    if (passed && !o.keep) rmSync(runDir, { recursive: true, force: true });
  }
}
