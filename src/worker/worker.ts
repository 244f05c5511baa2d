/**
 * The claim loop. Per webhook it asks the queue for as many due deliveries as that webhook may
 * have in flight (its concurrency limit, its circuit breaker, the worker's free slots), so a
 * slow or broken endpoint only ever occupies its own slots. Outcomes are written in groups: all
 * results that arrive while one write is in progress go into the next (group commit).
 */
import type { BreakerRules } from "../circuit-breaker.js";
import type { Clock } from "../clock.js";
import { type AttemptResult, attemptDelivery, retrySchedule } from "../dispatcher.js";
import type { EngineEvents } from "../engine-events.js";
import type { DeliveryClient } from "../http-client.js";
import type { Logger } from "../logger.js";
import type { BreakerState, WebhookRecord } from "../models.js";
import type { ClaimedDelivery, DeliveryQueue } from "../queue/queue.js";
import type { EngineStatements, WorkerStatements } from "../store/types.js";
import { BreakerMemory } from "./breakers.js";
import { InFlight } from "./in-flight.js";
import { OutcomeWriter } from "./outcome-writer.js";
import { SlowLane } from "./slow-lane.js";
import { WebhookCache } from "./webhook-cache.js";

export interface WorkerOptions {
  engineStore: EngineStatements;
  queue: DeliveryQueue;
  client: DeliveryClient;
  events: EngineEvents;
  logger: Logger;
  clock: Clock;
  /** Identifies this process's leases. */
  owner: string;
  /** Delivery lanes (WEBHOOK_WORKERS): each carries up to LANE_REQUESTS requests at once. */
  workers: number;
  endpointConcurrency: number;
  retrySchedule: readonly number[];
  /** Spread of each retry delay, 0..1 (WEBHOOK_RETRY_JITTER). */
  retryJitter?: number;
  breaker: BreakerRules;
  timeoutMs: number;
  drainTimeoutMs: number;
  /** How often to look for due work nobody announced (retries, expired leases). */
  sweepIntervalMs?: number;
  /** How long a claimed webhook's settings are reused before being read again. */
  webhookCacheMs?: number;
  /** Where this worker says it is alive (an API process without workers reads it for /health). */
  heartbeats?: WorkerStatements | null;
}

/**
 * Requests in flight per lane. The seed's `--workers 10` meant ten threads, each one request; in
 * an asynchronous runtime a lane carries many, so the default process holds 500 in flight.
 */
export const LANE_REQUESTS = 50;
/** An answer slower than this, or a request running longer, makes its webhook unproven (slow-lane.ts). */
export const SLOW_MS = 1000;

/** A heartbeat every 5 s, valid for 15 s: a worker is seen dead within 15 s of its last one. */
export const HEARTBEAT_MS = 5000;
export const HEARTBEAT_TTL_MS = 15_000;

export interface WorkerStats {
  processed: number;
  successful: number;
  failed: number;
}

export interface WorkerHealth {
  running: boolean;
  workers: number;
  /** Requests this process may have in flight at once (workers × LANE_REQUESTS). */
  capacity: number;
  in_flight: number;
  last_error: string | null;
  stats: WorkerStats;
}

export class DeliveryWorker {
  readonly #o: Required<WorkerOptions>;
  #running = false;
  #stopping: Promise<void> | undefined;
  readonly #ready = new Set<string>();
  readonly #inflight = new InFlight();
  readonly #breakers: BreakerMemory;
  readonly #lane: SlowLane;
  readonly #hooks: WebhookCache;
  #pumping = false;
  #pumpAgain = false;
  /** The claim in progress: the outcome writer takes no batch until it has landed. */
  #claiming: Promise<void> | undefined;
  readonly #writer: OutcomeWriter;
  #sweepTimer: unknown;
  #wakeTimer: { handle: unknown; at: number } | undefined;
  #unsubscribe: (() => void) | undefined;
  #lastError: string | null = null;
  #lastBeat = Number.NEGATIVE_INFINITY;
  #writeDeadline = Number.POSITIVE_INFINITY;
  /** Webhooks whose refused target was already logged at warn (once per process is enough). */
  readonly #refusedNoted = new Set<string>();
  #idle: Array<() => void> = [];
  readonly stats: WorkerStats = { processed: 0, successful: 0, failed: 0 };

  constructor(options: WorkerOptions) {
    this.#o = { sweepIntervalMs: 1000, webhookCacheMs: 1000, retryJitter: 0, heartbeats: null, ...options };
    this.#breakers = new BreakerMemory(this.#o.breaker);
    this.#lane = new SlowLane(this.#o.workers * LANE_REQUESTS, SLOW_MS);
    this.#hooks = new WebhookCache(
      (id) => this.#o.engineStore.webhookForDispatch(id),
      this.#o.clock,
      this.#o.webhookCacheMs,
      // Ours leads the stored breaker only by writes that have not landed yet.
      (hook) => {
        if (!this.#writer.hasBreakerChange(hook.id)) this.#breakers.adopt(hook, this.#o.clock.now());
      },
    );
    this.#writer = new OutcomeWriter({
      engineStore: this.#o.engineStore,
      owner: this.#o.owner,
      onWritten: (results) => this.#afterWrite(results),
      onError: (err) => this.#noteError("recording outcomes failed", err),
      // At shutdown, until the drain budget (plus a little, within the CLI's forced exit) is spent.
      keepTrying: () => this.#running || (this.#stopping !== undefined && Date.now() < this.#writeDeadline),
      hold: () => this.#claiming,
    });
  }

  get leaseMs(): number {
    return this.#o.timeoutMs + 60_000;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#unsubscribe = this.#o.queue.onWake((ids) => {
      for (const id of ids) this.#ready.add(id);
      this.#pump();
    });
    this.#sweep();
  }

  /** Graceful: stop claiming, let in-flight attempts finish within the drain budget, release the rest. */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  /** Forget cached settings of a webhook (it was updated or deleted in this process). */
  invalidate(webhookId: string): void {
    this.#hooks.invalidate(webhookId);
    this.#breakers.forget(webhookId);
    this.#ready.add(webhookId);
    this.#pump();
  }

  health(): WorkerHealth {
    return {
      running: this.#running && this.#stopping === undefined,
      workers: this.#o.workers,
      capacity: this.#lane.capacity,
      in_flight: this.#inflight.size,
      last_error: this.#lastError,
      stats: { ...this.stats },
    };
  }

  /** Breaker states this worker knows, as of now. */
  breakerStates(): Array<{ webhookId: string; state: BreakerState }> {
    return this.#breakers.states(this.#o.clock.now());
  }

  /** Resolves when nothing is in flight or waiting to be written (tests, shutdown). */
  idle(): Promise<void> {
    if (this.#inflight.size === 0 && this.#writer.idle) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  async #shutdown(): Promise<void> {
    this.#running = false;
    this.#writeDeadline = Date.now() + this.#o.drainTimeoutMs + 3000;
    this.#unsubscribe?.();
    this.#o.clock.clearTimeout(this.#sweepTimer);
    if (this.#wakeTimer) this.#o.clock.clearTimeout(this.#wakeTimer.handle);
    const drained = await Promise.race([
      this.idle().then(() => true),
      new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), this.#o.drainTimeoutMs);
        t.unref();
      }),
    ]);
    if (!drained) {
      // Cancel what is still waiting for an answer before giving it back, so nothing released is
      // still being sent; what was answered is recorded below, before the pools close.
      const left = this.#inflight.abortUnanswered();
      this.#o.logger.warn({ in_flight: left.length }, "drain timeout: releasing deliveries still in flight");
      await this.#o.queue.release(left, this.#o.clock.now()).catch(() => {});
    }
    await this.#writer.drain();
    await this.#o.heartbeats?.retire(this.#o.owner).catch(() => {});
  }

  #scheduleSweep(): void {
    if (!this.#running) return;
    this.#sweepTimer = this.#o.clock.setTimeout(() => this.#sweep(), this.#o.sweepIntervalMs);
  }

  /** Finds due work nobody announced: retries, leases that ran out, other processes' emits. */
  #sweep(): void {
    if (!this.#running) return;
    const now = this.#o.clock.now();
    this.#beat(now);
    this.#o.queue
      .readyWebhooks(now)
      .then((ids) => {
        for (const id of ids) {
          this.#ready.add(id);
        }
        this.#extendLeases(now);
        this.#lastError = null;
        this.#pump();
      })
      .catch((err: unknown) => this.#noteError("sweep failed", err))
      .finally(() => this.#scheduleSweep());
  }

  #beat(now: number): void {
    const hb = this.#o.heartbeats;
    if (!hb || now - this.#lastBeat < HEARTBEAT_MS) return;
    this.#lastBeat = now;
    hb.beat(this.#o.owner, new Date(now + HEARTBEAT_TTL_MS).toISOString()).catch((err: unknown) => {
      this.#lastBeat = Number.NEGATIVE_INFINITY;
      this.#noteError("heartbeat failed", err);
    });
  }

  /** Wake precisely when the earliest known retry falls due (the sweep is the safety net). */
  #wakeAt(at: number): void {
    if (!this.#running) return;
    if (this.#wakeTimer && this.#wakeTimer.at <= at) return;
    if (this.#wakeTimer) this.#o.clock.clearTimeout(this.#wakeTimer.handle);
    const handle = this.#o.clock.setTimeout(
      () => {
        this.#wakeTimer = undefined;
        this.#sweep();
      },
      Math.max(0, at - this.#o.clock.now()),
    );
    this.#wakeTimer = { handle, at };
  }

  #extendLeases(now: number): void {
    const due = this.#inflight.dueForRenewal(now, this.leaseMs);
    if (due.length > 0) {
      this.#o.queue
        .extend(due, now + this.leaseMs)
        .catch((err: unknown) => this.#noteError("lease extension failed", err));
    }
  }

  /**
   * Coalesced: every wake-up and completion in one turn of the event loop leads to one claim
   * round trip (one transaction) for all the webhooks that have room.
   */
  #pump(): void {
    if (!this.#running) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    setImmediate(() => {
      this.#pumpLoop()
        .catch((err: unknown) => this.#noteError("claim failed", err))
        .finally(() => {
          this.#pumping = false;
          if (this.#pumpAgain) {
            this.#pumpAgain = false;
            this.#pump();
          }
        });
    });
  }

  async #pumpLoop(): Promise<void> {
    this.#pumpAgain = false;
    let free = this.#lane.capacity - this.#inflight.size;
    const plan: Array<{ webhookId: string; max: number; limit: number; hook: WebhookRecord }> = [];
    const now = this.#o.clock.now();
    let unproven = this.#lane.unprovenInFlight(this.#inflight, now);
    for (const webhookId of [...this.#ready]) {
      if (free <= 0) break;
      const hook = await this.#hooks.get(webhookId);
      if (!hook) {
        this.#ready.delete(webhookId);
        continue;
      }
      const inflight = this.#inflight.count(webhookId);
      const limit = this.#breakers.allowance(hook, now, this.#o.endpointConcurrency);
      // Answered requests no longer occupy the endpoint, though their slots wait for the write.
      const room = limit - (inflight - this.#inflight.answeredCount(webhookId));
      this.#ready.delete(webhookId);
      if (room <= 0) {
        // Saturated or open: it comes back when a slot frees or the probe is due.
        const probe = this.#breakers.probeAt(hook, now);
        if (probe !== null && inflight === 0) this.#wakeAt(probe);
        continue;
      }
      let max = Math.min(room, free);
      if (!this.#lane.proven(webhookId, this.#inflight, now)) {
        // Slow, hanging or new: within the unproven half of the capacity, or its one probe.
        max = Math.min(max, this.#lane.room(inflight, unproven));
        if (max <= 0) continue; // back in line when one of the unproven answers
        unproven += max;
      }
      free -= max;
      plan.push({ webhookId, max, limit, hook });
    }
    if (plan.length === 0 || !this.#running) return;
    // The queue counts every leased delivery against a webhook's limit, answered ones too. Those
    // whose outcome still waits for the writer are leased until the claim lands (the writer is
    // held meanwhile), so they may be counted as free: across the fleet, requests open at the
    // endpoint stay within the limit, and a hot webhook's next request need not wait for the
    // write and the settle of the previous one.
    const waiting = this.#writer.waiting();
    const requests = plan.map((p) => ({ ...p, limit: p.limit + (waiting.get(p.webhookId) ?? 0) }));
    const claim = this.#o.queue.claim(requests, now, now + this.leaseMs);
    const landed = claim.then(
      () => {},
      () => {},
    );
    this.#claiming = landed.finally(() => {
      this.#claiming = undefined;
    });
    const claimed = await claim;
    const byHook = new Map<string, ClaimedDelivery[]>();
    for (const c of claimed) {
      const list = byHook.get(c.webhookId);
      if (list) list.push(c);
      else byHook.set(c.webhookId, [c]);
    }
    for (const { webhookId, max, hook } of plan) {
      const got = byHook.get(webhookId) ?? [];
      // Got all it asked for: there may be more, so back into line (round-robin between webhooks).
      if (got.length === max) this.#ready.add(webhookId);
      for (const c of got) this.#start(c, hook, now);
    }
    if (claimed.length > 0) this.#o.events.emit("dequeued", { count: claimed.length });
    // Webhooks still ready (not reached for lack of free slots) wait for the next completion.
    if (this.#ready.size > 0 && this.#lane.capacity - this.#inflight.size > 0) this.#pumpAgain = true;
  }

  #start(c: ClaimedDelivery, hook: WebhookRecord, now: number): void {
    const signal = this.#inflight.add(c, now);
    attemptDelivery(c, hook, {
      client: this.#o.client,
      clock: this.#o.clock,
      schedule: retrySchedule(hook, this.#o.retrySchedule),
      jitter: this.#o.retryJitter,
      signal,
    }).then(
      (r) => {
        // Released at shutdown while it ran: it was given back, and its result is not ours to write.
        if (signal.aborted) return;
        this.#inflight.answered(c.id);
        this.#finished(hook, r);
        // Its endpoint has room again: claim the webhook's next delivery now, not after the write.
        this.#ready.add(hook.id);
        this.#pump();
      },
      (err: unknown) => {
        // Only a bug gets here (the client never throws): give the delivery back for later.
        this.#noteError("attempt crashed", err);
        this.#release(c);
        this.#o.queue.release([c], this.#o.clock.now() + 5000).catch(() => {});
      },
    );
  }

  #release(c: ClaimedDelivery): void {
    this.#freeSlot(c.id, c.webhookId);
    this.#pump();
    this.#checkIdle();
  }

  #finished(hook: WebhookRecord, r: AttemptResult): void {
    const now = this.#o.clock.now();
    if (r.attempted) this.#lane.answered(hook.id, r.outcome.durationMs, now);
    const change = r.attempted ? this.#breakers.record(hook, r.outcome.status === "success", now) : null;
    if (change) {
      this.#writer.breaker(hook.id, change.to, change.openedAt);
      this.#o.events.emit("breaker", { webhookId: hook.id, from: change.from, to: change.to });
      this.#o.logger.info(
        { webhook_id: hook.id, from: change.from, to: change.to },
        "circuit breaker changed state",
      );
      if (change.to === "open") this.#wakeAt(now + this.#o.breaker.cooldownMs);
    }
    if (r.gone) {
      this.#writer.disable(hook.id, "endpoint answered 410 Gone", r.outcome.attemptedAt);
      // Until that write lands, remember it here: the webhook's other deliveries must not be sent.
      this.#hooks.override({ ...hook, active: false });
    }
    // The slot stays taken until the outcome is written (the queue counts the lease until then);
    // a claim meanwhile counts it as free for the endpoint (see #pumpLoop).
    this.#writer.add(r);
  }

  #freeSlot(deliveryId: string, webhookId: string): void {
    if (this.#inflight.remove(deliveryId, webhookId)) this.#ready.add(webhookId);
  }

  #afterWrite(results: AttemptResult[]): void {
    const settle = [];
    for (const r of results) {
      const o = r.outcome;
      const nextDueAt = o.nextRetryAt === null ? null : Date.parse(o.nextRetryAt);
      settle.push({ entry: { id: o.deliveryId, webhookId: o.webhookId, priority: o.priority }, nextDueAt });
      if (nextDueAt !== null) this.#wakeAt(nextDueAt);
      if (!r.attempted) continue;
      this.stats.processed++;
      if (o.status === "success") this.stats.successful++;
      else this.stats.failed++;
      this.#o.events.emit("attempt", {
        webhookId: o.webhookId,
        deliveryId: o.deliveryId,
        event: o.event,
        attempt: o.attempt,
        outcome:
          o.status === "success"
            ? "success"
            : o.status === "dead_letter"
              ? "dead_letter"
              : r.gone
                ? "failed"
                : "retry",
        status: o.responseCode,
        durationMs: o.durationMs,
        errorType: o.errorType,
      });
      const fields = {
        webhook_id: o.webhookId,
        delivery_id: o.deliveryId,
        event: o.event,
        attempt: o.attempt,
        status: o.status,
        response_code: o.responseCode,
        duration_ms: o.durationMs,
        error_type: o.errorType,
      };
      if (o.errorType === "refused_target" && !this.#refusedNoted.has(o.webhookId)) {
        // At debug level alone this is invisible, and it is nearly always a missing setting.
        this.#refusedNoted.add(o.webhookId);
        this.#o.logger.warn(
          { webhook_id: o.webhookId, delivery_id: o.deliveryId },
          "delivery refused: the target address is not allowed by the SSRF rules; a development or test target must be listed in WEBHOOK_ALLOW_TARGETS on every worker process",
        );
      }
      if (o.status === "dead_letter")
        this.#o.logger.warn(fields, "delivery dead-lettered: every attempt failed");
      else this.#o.logger.debug(fields, "delivery attempt");
      if (r.gone) {
        this.#o.logger.warn({ webhook_id: o.webhookId }, "webhook disabled: its endpoint answered 410 Gone");
        this.#o.events.emit("disabled", { webhookId: o.webhookId, reason: "endpoint answered 410 Gone" });
      }
    }
    this.#o.queue
      .settle(settle)
      .catch((err: unknown) => this.#noteError("settle failed", err))
      .finally(() => {
        for (const r of results) this.#freeSlot(r.outcome.deliveryId, r.outcome.webhookId);
        this.#pump();
        this.#checkIdle();
      });
  }

  #checkIdle(): void {
    if (this.#inflight.size > 0 || !this.#writer.idle) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  #noteError(what: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.#lastError = `${what}: ${message}`;
    this.#o.logger.error({ err: message }, what);
  }
}
