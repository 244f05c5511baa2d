/**
 * Why this exists: the load of a campaign, as a real producer sends it — at a steady rate,
 * through `POST /api/v1/events` and `/events/batch` with admin keys (`user_id` in each event), an
 * idempotency key on every event (also carried as `data.chaos_key`, so a receiver can tell which
 * emit a request comes from), and each failed request (network error, timeout, 429, 5xx) retried
 * with the same keys until it is answered. It records, per event, when it was first sent, when
 * (and whether) it was acknowledged, and with which event id: the checker's "acknowledged".
 *
 * The API limits each key to 600 requests a minute, so events mostly go in batches and the
 * requests are spread over several keys.
 */
import type { EmitRecord } from "./history.js";
import type { Rng } from "./rng.js";

export const EVENT_MIX: ReadonlyArray<readonly [string, number]> = [
  ["memory.created", 35],
  ["memory.updated", 15],
  ["session.started", 15],
  ["concept.discovered", 15],
  ["sync.failed", 10],
  ["quota.exceeded", 10],
];

export const EVENT_TYPES: readonly string[] = EVENT_MIX.map(([t]) => t);

function dataFor(event: string, key: string, n: number): Record<string, unknown> {
  switch (event) {
    case "memory.created":
      return {
        memory_id: `mem_${n}`,
        content_preview: `chaos ${n}`,
        concepts: ["chaos"],
        importance: 0.5,
        chaos_key: key,
      };
    case "memory.updated":
      return { memory_id: `mem_${n}`, changed_fields: ["content"], chaos_key: key };
    case "session.started":
      return { session_id: `ses_${n}`, chaos_key: key };
    case "concept.discovered":
      return {
        concept_id: `con_${n}`,
        name: "chaos",
        related_memory_ids: [],
        confidence: 0.5,
        chaos_key: key,
      };
    case "sync.failed":
      return { sync_id: `syn_${n}`, error: "upstream timeout", retryable: true, chaos_key: key };
    default:
      return { resource: "memories", used: 10, limit: 10, chaos_key: key };
  }
}

export interface ProducerOptions {
  baseUrl: string;
  keys: readonly string[];
  /** Users and their share of the events. */
  users: ReadonlyArray<readonly [string, number]>;
  /** Events per second. */
  rate: number;
  rng: Rng;
  /** Prefix of the idempotency keys (the seed, so runs never collide). */
  keyPrefix: string;
  requestTimeoutMs?: number;
}

interface Outgoing {
  path: string;
  body: unknown;
  records: EmitRecord[];
  batch: boolean;
}

export class Producer {
  readonly emits: EmitRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #outstanding = new Set<Promise<void>>();
  #giveUpAt = Number.POSITIVE_INFINITY;
  #n = 0;
  #carry = 0;
  #keyTurn = 0;
  requests = 0;
  retries = 0;
  /** Ticks skipped because too many requests were outstanding (the service was unreachable). */
  skippedTicks = 0;
  /** How emit requests were answered: "202", "500", "429", "timeout", "network error"… */
  readonly answers: Record<string, number> = {};

  constructor(readonly o: ProducerOptions) {}

  start(): void {
    let last = Date.now();
    this.#timer = setInterval(() => {
      // By the clock, not by the tick count: a loaded event loop must not lower the rate.
      const now = Date.now();
      this.#tick(now - last);
      last = now;
    }, 100);
  }

  /** No new events from now on. */
  stopEmitting(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Waits for outstanding requests to be answered; gives up on them after `ms`. */
  async finish(ms: number): Promise<void> {
    this.stopEmitting();
    this.#giveUpAt = Date.now() + ms;
    while (this.#outstanding.size > 0) await Promise.race(this.#outstanding);
  }

  get outstanding(): number {
    return this.#outstanding.size;
  }

  #tick(tickMs: number): void {
    if (this.#outstanding.size > 400) {
      this.skippedTicks++;
      return;
    }
    this.#carry += (this.o.rate * tickMs) / 1000;
    const n = Math.floor(this.#carry);
    this.#carry -= n;
    if (n === 0) return;
    const { rng } = this.o;
    const records: EmitRecord[] = [];
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const key = `${this.o.keyPrefix}-${++this.#n}`;
      records.push({
        key,
        userId: rng.weighted(this.o.users),
        event: rng.weighted(EVENT_MIX),
        firstSentAt: now,
        lastEndedAt: now,
        ackedAt: null,
        eventId: null,
        deliveries: null,
        attempts: 0,
        refused: null,
        lastError: null,
        duplicate: null,
        failedAnswers: [],
      });
    }
    this.emits.push(...records);
    const wire = (r: EmitRecord, n: number) => ({
      event: r.event,
      user_id: r.userId,
      data: dataFor(r.event, r.key, n),
      idempotency_key: r.key,
    });
    // Now and then one event alone (POST /events), the rest as one batch.
    let rest = records;
    if (rng.chance(0.4) || records.length === 1) {
      const [one, ...others] = records;
      this.#send({ path: "/api/v1/events", body: wire(one!, this.#n), records: [one!], batch: false });
      rest = others;
    }
    if (rest.length > 0) {
      this.#send({
        path: "/api/v1/events/batch",
        body: { events: rest.map((r, i) => wire(r, this.#n - i)) },
        records: rest,
        batch: true,
      });
    }
  }

  #count(answer: string): void {
    this.answers[answer] = (this.answers[answer] ?? 0) + 1;
  }

  #send(out: Outgoing): void {
    const p = this.#deliver(out).finally(() => this.#outstanding.delete(p));
    this.#outstanding.add(p);
  }

  async #deliver(out: Outgoing): Promise<void> {
    const body = JSON.stringify(out.body);
    for (let attempt = 0; ; attempt++) {
      const key = this.o.keys[this.#keyTurn++ % this.o.keys.length]!;
      for (const r of out.records) r.attempts++;
      this.requests++;
      if (attempt > 0) this.retries++;
      let wait = Math.min(2000, 200 * 2 ** attempt);
      try {
        const res = await fetch(`${this.o.baseUrl}${out.path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(this.o.requestTimeoutMs ?? 5000),
        });
        const text = await res.text();
        const ended = Date.now();
        this.#count(String(res.status));
        for (const r of out.records) r.lastEndedAt = ended;
        if (res.status === 202) {
          type Result = { id?: string; deliveries?: number; duplicate?: boolean };
          const j = JSON.parse(text) as Result & { results?: Result[] };
          const results = out.batch ? (j.results ?? []) : [j];
          out.records.forEach((r, i) => {
            r.ackedAt = ended;
            r.eventId = results[i]?.id ?? null;
            r.deliveries = results[i]?.deliveries ?? null;
            r.duplicate = results[i]?.duplicate ?? null;
          });
          return;
        }
        for (const r of out.records) r.failedAnswers.push(String(res.status));
        if (res.status !== 429 && res.status < 500) {
          for (const r of out.records) r.refused = `${res.status} ${text.slice(0, 300)}`;
          return;
        }
        for (const r of out.records) r.lastError = `${res.status} ${text.slice(0, 200)}`;
        const after = Number(res.headers.get("retry-after"));
        if (res.status === 429 && after > 0) wait = Math.min(after * 1000, 5000);
      } catch (err) {
        const ended = Date.now();
        const what = (err as Error).name === "TimeoutError" ? "timeout" : "network error";
        this.#count(what);
        for (const r of out.records) {
          r.failedAnswers.push(what);
          r.lastEndedAt = ended;
          r.lastError = what === "timeout" ? what : (err as Error).message;
        }
      }
      if (Date.now() + wait > this.#giveUpAt) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
