/**
 * Why this exists: it carries out a planned fault timeline (faults.ts) against the running
 * topology, receivers and webhooks, and undoes every fault when its time is up — or all at once
 * when the campaign heals. What actually happened, and when, goes into the executed timeline.
 */
import type { ServiceApi } from "./api.js";
import { describeFault, type Fault, type Scheduled } from "./faults.js";
import type { WebhookHistory } from "./history.js";
import type { ChaosReceiver } from "./receivers.js";
import type { Topology } from "./topology.js";

export interface TimelineEntry {
  /** Milliseconds after the producer started. */
  at: number;
  text: string;
}

interface Pending {
  timer: NodeJS.Timeout | undefined;
  undo: () => Promise<void>;
  label: string;
}

export class Injector {
  readonly executed: TimelineEntry[] = [];
  #t0 = 0;
  #starts: NodeJS.Timeout[] = [];
  readonly #pending = new Set<Pending>();
  readonly #running = new Set<Promise<void>>();
  #healing = false;
  readonly #healProblems: string[] = [];

  constructor(
    readonly deps: {
      topology: Topology;
      receivers: Map<string, ChaosReceiver>;
      webhooks: Map<string, WebhookHistory>;
      api: ServiceApi;
    },
  ) {}

  log(text: string): void {
    this.executed.push({ at: Date.now() - this.#t0, text });
  }

  run(faults: readonly Scheduled[], t0: number): void {
    this.#t0 = t0;
    for (const s of faults) {
      const t = setTimeout(() => this.#track(this.#apply(s.fault)), Math.max(0, t0 + s.at - Date.now()));
      this.#starts.push(t);
    }
  }

  #track(p: Promise<void>): void {
    const q = p
      .catch((err: unknown) => {
        this.log(`fault action failed: ${(err as Error).message}`);
        if (this.#healing) this.#healProblems.push((err as Error).message);
      })
      .finally(() => this.#running.delete(q));
    this.#running.add(q);
  }

  /** Runs `undo` after `ms`, or at heal time, whichever comes first. */
  #later(ms: number, label: string, undo: () => Promise<void>): void {
    if (this.#healing) {
      this.#track(undo());
      return;
    }
    const entry: Pending = { timer: undefined, undo, label };
    entry.timer = setTimeout(() => {
      this.#pending.delete(entry);
      this.#track(undo());
    }, ms);
    this.#pending.add(entry);
  }

  async #apply(f: Fault): Promise<void> {
    if (this.#healing) return;
    const { topology, receivers, webhooks, api } = this.deps;
    this.log(describeFault(f));
    switch (f.kind) {
      case "kill":
      case "term": {
        const started = Date.now();
        await (f.kind === "kill" ? topology.kill(f.target) : topology.term(f.target));
        if (f.kind === "term")
          this.log(`${f.target} exited ${((Date.now() - started) / 1000).toFixed(1)} s after SIGTERM`);
        this.#later(f.downMs, `restart ${f.target}`, async () => {
          this.log(`restarting ${f.target}`);
          await topology.restart(f.target);
          this.log(`${f.target} is up again (pid ${topology.proc(f.target).pid})`);
        });
        return;
      }
      case "pause":
        topology.pause(f.target);
        this.#later(f.ms, `SIGCONT ${f.target}`, async () => {
          topology.resume(f.target);
          this.log(`SIGCONT ${f.target}`);
        });
        return;
      case "redis-restart":
        await topology.killRedis();
        this.#later(f.downMs, "start redis", async () => {
          await topology.startRedis();
          this.log("redis-server is up again (empty)");
        });
        return;
      case "db-cut":
      case "db-stall":
      case "db-blackhole":
      case "db-delay": {
        const proxy = topology.proxy!;
        await proxy.set(
          f.kind === "db-cut"
            ? { kind: "cut" }
            : f.kind === "db-stall"
              ? { kind: "stall" }
              : f.kind === "db-blackhole"
                ? { kind: "blackhole" }
                : { kind: "delay", ms: f.latencyMs },
        );
        this.#later(f.ms, "restore the proxy", async () => {
          await proxy.restore();
          this.log(`PostgreSQL link restored (${proxy.connections} connections open through the proxy)`);
        });
        return;
      }
      case "receiver": {
        const rx = receivers.get(f.target)!;
        rx.setMode(f.mode);
        this.#later(f.ms, `receiver ${f.target} back to 200`, async () => {
          rx.setMode({ kind: "ok" });
          this.log(`receiver ${f.target} answers 200 again`);
        });
        return;
      }
      case "webhook-events":
      case "webhook-url":
      case "webhook-disable": {
        const w = webhooks.get(f.target)!;
        const rxUrl = receivers.get(f.target)!.url;
        const done = (c: { sentAt: number; ackedAt: number }, what: string) =>
          this.log(`${what} answered after ${((c.ackedAt - c.sentAt) / 1000).toFixed(1)} s`);
        if (f.kind === "webhook-events") {
          done(
            await api.change(w, { events: f.events }, rxUrl, `events → ${JSON.stringify(f.events)}`),
            `PATCH ${w.name} events`,
          );
        } else if (f.kind === "webhook-url") {
          done(await api.change(w, { path: f.path }, rxUrl, `url → ${f.path}`), `PATCH ${w.name} url`);
        } else {
          done(await api.change(w, { active: false }, rxUrl, "disable"), `PATCH ${w.name} active=false`);
          this.#later(f.ms, `re-enable ${w.name}`, async () => {
            this.log(`PATCH webhook ${w.name} active=true`);
            done(await api.change(w, { active: true }, rxUrl, "enable"), `PATCH ${w.name} active=true`);
          });
        }
        return;
      }
    }
  }

  /**
   * Heal: no more faults; every pending undo runs now; then every process is made to run, the
   * proxy passes, Redis is up, receivers answer 200 and every webhook is active. Bounded by
   * `limitMs`: what is not done by then is returned as a problem (a service that cannot take a
   * PATCH, or a process that cannot start, once everything else is healed is itself a failure).
   */
  async heal(limitMs: number): Promise<string[]> {
    this.#healing = true;
    const deadline = Date.now() + limitMs;
    const { topology, receivers, webhooks, api } = this.deps;
    api.giveUpBy(deadline);
    const inTime = async (p: Promise<unknown>) =>
      Promise.race([
        p.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), Math.max(0, deadline - Date.now()))),
      ]);
    for (const t of this.#starts) clearTimeout(t);
    const undos = [...this.#pending];
    this.#pending.clear();
    for (const u of undos) if (u.timer) clearTimeout(u.timer);
    this.log(`heal: ${undos.length} faults still active (${undos.map((u) => u.label).join("; ") || "none"})`);
    for (const u of undos) this.#track(u.undo());
    // Fault actions still in progress (a SIGTERM drain, a PATCH being retried) finish too; an
    // action that ends now has its undo run at once.
    const settle = async () => {
      while (this.#running.size > 0) await Promise.all([...this.#running]);
    };
    if (!(await inTime(settle())))
      this.#healProblems.push("fault actions still unfinished when healing ran out of time");
    for (const rx of receivers.values()) rx.setMode({ kind: "ok" });
    if (!(await inTime(topology.heal()))) {
      const down = topology.names.filter((n) => !topology.proc(n).running);
      this.#healProblems.push(
        `not every process answered /health in time (down: ${down.join(", ") || "none"})`,
      );
    }
    for (const w of webhooks.values()) {
      const state = w.changes.at(-1)?.to ?? w.initial;
      if (state.active) continue;
      try {
        await api.change(w, { active: true }, receivers.get(w.name)!.url, "enable (heal)");
      } catch (err) {
        this.#healProblems.push(`re-enabling webhook ${w.name}: ${(err as Error).message}`);
      }
    }
    await inTime(api.settled());
    const problems = [...new Set(this.#healProblems)];
    this.log(
      problems.length === 0
        ? "healed: every process running, the proxy passing, receivers answering 200, webhooks active"
        : `healing incomplete after ${(limitMs / 1000).toFixed(0)} s: ${problems.join("; ")}`,
    );
    return problems;
  }
}
