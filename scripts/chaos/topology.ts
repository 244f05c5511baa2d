/**
 * Why this exists: the real service, as an operator runs it, under the campaign's hands. It owns
 * the storage of a run (a SQLite file, or a PostgreSQL schema of its own reached through the
 * chaos proxy), the private redis-server of the redis mode, and every service process (`serve`,
 * and in the distributed modes `serve --no-workers` plus `worker`s), which it can start, SIGKILL,
 * SIGTERM, SIGSTOP and SIGCONT by name. A process asked to run is restarted until it does (a
 * restart during a database fault may fail at start-up); one that exits on its own is noted.
 *
 * Every process gets WEBHOOK_ALLOW_TARGETS=127.0.0.0/8 (the receivers are loopback), a short
 * WEBHOOK_TIMEOUT (so a lease, WEBHOOK_TIMEOUT + 60 s, is as short as it can be), a drain budget
 * shorter than that timeout (a SIGTERM must release requests still in flight), a short retry
 * schedule with many retries and a short breaker cooldown (so faults delay deliveries without
 * dead-lettering them, and healing drains in seconds).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { BIN, freePort } from "../../test/helpers/cli.js";
import { type RedisServer, startRedisServer } from "../../test/helpers/redis-server.js";
import type { Mode } from "./history.js";
import { type ChaosProxy, startChaosProxy } from "./tcp-proxy.js";

export const TIMEOUT = "2s";
export const TIMEOUT_MS = 2000;
/** WEBHOOK_TIMEOUT + 60 s: how long a claimed delivery is leased (worker.ts leaseMs). */
export const LEASE_MS = TIMEOUT_MS + 60_000;
/** Redis mode: a worker silent this long is reaped and its leases handed out (redis-queue.ts). */
export const HEARTBEAT_TTL_MS = 15_000;

/** The CLI under test: this repository's, or another build's (`--bin`, to check a fix or bisect). */
export const DEFAULT_BIN = BIN;

export interface TopologyOptions {
  /** bin/continuum-webhooks.js of the build under test. */
  bin: string;
  mode: Mode;
  workers: number;
  limit: number;
  runDir: string;
  /** PostgreSQL modes: the server to make a schema in. */
  databaseUrl: string;
  seed: number;
  /** Lines for the campaign's log (unplanned exits, restarts that failed). */
  note: (line: string) => void;
}

class Proc {
  child: ChildProcess | undefined;
  paused = false;
  /** Should be running: restart until it is. */
  wanted = false;
  #exited: Promise<void> = Promise.resolve();
  #expectExit = false;
  #starting: Promise<void> | undefined;
  readonly log: WriteStream;
  unplannedExits = 0;

  constructor(
    readonly bin: string,
    readonly name: string,
    readonly args: string[],
    readonly env: NodeJS.ProcessEnv,
    readonly healthPort: number,
    logDir: string,
    readonly note: (line: string) => void,
  ) {
    this.log = createWriteStream(join(logDir, `${name}.log`), { flags: "a" });
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** Spawns once and waits for /health to answer; throws if it exits or never answers. */
  async #spawnOnce(): Promise<void> {
    const child = spawn(process.execPath, [this.bin, ...this.args], {
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.paused = false;
    this.#expectExit = false;
    let ready = false;
    this.log.write(`\n=== ${new Date().toISOString()} start pid ${child.pid}: ${this.args.join(" ")}\n`);
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.#exited = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        this.log.write(
          `=== ${new Date().toISOString()} pid ${child.pid} exited (code ${code}, signal ${signal})\n`,
        );
        if (!this.#expectExit && this.wanted && ready) {
          this.unplannedExits++;
          this.note(`${this.name} (pid ${child.pid}) exited on its own: code ${code}, signal ${signal}`);
          // Bring it back, as a supervisor would.
          setTimeout(() => void this.ensureRunning().catch(() => {}), 500).unref();
        }
        resolve();
      }),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${this.name} exited at start-up`);
      try {
        await fetch(`http://127.0.0.1:${this.healthPort}/health`, { signal: AbortSignal.timeout(2000) });
        ready = true;
        return;
      } catch {
        if (Date.now() > deadline) {
          this.#expectExit = true;
          child.kill("SIGKILL");
          await this.#exited;
          throw new Error(`${this.name} did not answer /health within 30 s`);
        }
        await sleep(200);
      }
    }
  }

  /** Starts it if it is not running, retrying every second while it is wanted. */
  ensureRunning(): Promise<void> {
    this.wanted = true;
    if (this.running) return this.#starting ?? Promise.resolve();
    this.#starting ??= (async () => {
      try {
        for (let attempt = 1; this.wanted; attempt++) {
          try {
            await this.#spawnOnce();
            return;
          } catch (err) {
            if (attempt === 1 || attempt % 10 === 0)
              this.note(
                `${this.name}: start attempt ${attempt} failed (${(err as Error).message}); retrying`,
              );
            await sleep(1000);
          }
        }
      } finally {
        this.#starting = undefined;
      }
    })();
    return this.#starting;
  }

  /** Kills (or terminates) the process, a starting one included, and keeps it down. */
  async signal(sig: "SIGKILL" | "SIGTERM"): Promise<void> {
    this.wanted = false;
    const child = this.child;
    if (child && this.running) {
      this.#expectExit = true;
      if (sig === "SIGTERM" && this.paused) child.kill("SIGCONT");
      child.kill(sig);
      this.paused = false;
      // SIGTERM: the drain budget (WEBHOOK_DRAIN_TIMEOUT=1s) plus the process's own 5 s grace.
      const t = sig === "SIGTERM" ? setTimeout(() => child.kill("SIGKILL"), 12_000) : undefined;
      await this.#exited;
      if (t) clearTimeout(t);
    }
    await this.#starting?.catch(() => {});
  }

  pause(): void {
    if (this.running && !this.paused) {
      this.child!.kill("SIGSTOP");
      this.paused = true;
    }
  }

  resume(): void {
    if (this.running && this.paused) {
      this.child!.kill("SIGCONT");
      this.paused = false;
    }
  }

  /** Synchronous last resort (process exit): no stopped or orphaned child survives the campaign. */
  killNow(): void {
    this.wanted = false;
    this.#expectExit = true;
    if (this.running) {
      this.child!.kill("SIGKILL");
      this.child!.kill("SIGCONT");
    }
  }
}

export interface Storage {
  /** What the service processes are given (through the proxy in the PostgreSQL modes). */
  serviceEnv: Record<string, string>;
  /** For the checker: the database directly, never through the proxy. */
  direct: { sqlitePath?: string; pgUrl?: string };
  drop(): Promise<void>;
}

export class Topology {
  readonly procs = new Map<string, Proc>();
  proxy: ChaosProxy | undefined;
  redis: RedisServer | undefined;
  storage: Storage | undefined;
  servePort = 0;
  #redisStarting: Promise<void> | undefined;

  constructor(readonly o: TopologyOptions) {}

  get apiUrl(): string {
    return `http://127.0.0.1:${this.servePort}`;
  }

  /** Names of the processes the fault schedule may hit. */
  get names(): string[] {
    return [...this.procs.keys()];
  }

  get workerNames(): string[] {
    return this.names.filter((n) => n !== "serve");
  }

  /** Storage, Redis, migrations; nothing runs yet. */
  async prepare(): Promise<void> {
    const { mode } = this.o;
    if (mode === "embedded") {
      const sqlitePath = join(this.o.runDir, "continuum-webhooks.db");
      this.storage = {
        serviceEnv: { SQLITE_PATH: sqlitePath },
        direct: { sqlitePath },
        drop: async () => {},
      };
    } else {
      const schema = `chaos_${this.o.seed}_${process.pid}_${randomBytes(3).toString("hex")}`;
      const admin = new pg.Client({ connectionString: this.o.databaseUrl, connectionTimeoutMillis: 5000 });
      await admin.connect();
      try {
        await admin.query(`CREATE SCHEMA ${schema}`);
      } finally {
        await admin.end();
      }
      const direct = new URL(this.o.databaseUrl);
      direct.searchParams.set("options", `-c search_path=${schema}`);
      this.proxy = await startChaosProxy(direct.hostname, Number(direct.port || 5432));
      const viaProxy = new URL(direct);
      viaProxy.hostname = "127.0.0.1";
      viaProxy.port = String(this.proxy.port);
      const dbUrl = this.o.databaseUrl;
      this.storage = {
        serviceEnv: { DATABASE_URL: viaProxy.toString() },
        direct: { pgUrl: direct.toString() },
        async drop() {
          const c = new pg.Client({ connectionString: dbUrl, connectionTimeoutMillis: 5000 });
          await c.connect();
          try {
            await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          } finally {
            await c.end();
          }
        },
      };
      if (mode === "redis") this.redis = await startRedisServer();
    }
    await this.#runOnce(["migrate"]);
  }

  /** The database directly (not through the proxy), for one-off CLI calls. */
  #directEnv(): Record<string, string> {
    const d = this.storage!.direct;
    return d.pgUrl ? { DATABASE_URL: d.pgUrl } : { SQLITE_PATH: d.sqlitePath! };
  }

  /** One CLI call against the database directly; resolves with its stdout. */
  #runOnce(args: string[]): Promise<string> {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "warn", ...this.#directEnv() };
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [this.o.bin, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`continuum-webhooks ${args[0]} failed: ${stderr || err.message}`));
        else resolve(stdout);
      });
    });
  }

  async createAdminKey(name: string): Promise<string> {
    const key = (
      await this.#runOnce(["api-key", "create", "--user", "chaos-admin", "--admin", "--name", name])
    ).trim();
    if (!key.startsWith("cwk_")) throw new Error(`api-key create printed no key: ${key.slice(0, 200)}`);
    return key;
  }

  #env(extra: Record<string, string>): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LOG_LEVEL: "warn",
      HOST: "127.0.0.1",
      WEBHOOK_ALLOW_TARGETS: "127.0.0.0/8",
      WEBHOOK_TIMEOUT: TIMEOUT,
      WEBHOOK_RETRY_SCHEDULE: "1s,2s,4s",
      WEBHOOK_MAX_RETRIES: "50",
      WEBHOOK_BREAKER_COOLDOWN: "2s",
      // Shorter than WEBHOOK_TIMEOUT, so a graceful stop really has to release requests in flight.
      WEBHOOK_DRAIN_TIMEOUT: "1s",
      WEBHOOK_WORKERS: "40",
      WEBHOOK_ENDPOINT_CONCURRENCY: String(this.o.limit),
      ...this.storage!.serviceEnv,
      ...(this.redis ? { REDIS_URL: this.redis.url } : {}),
      ...extra,
    };
  }

  /** Creates the processes and starts them all. */
  async start(): Promise<void> {
    this.servePort = await freePort();
    const note = this.o.note;
    const serveArgs =
      this.o.mode === "embedded" ? ["serve", "--no-migrate"] : ["serve", "--no-migrate", "--no-workers"];
    this.procs.set(
      "serve",
      new Proc(
        this.o.bin,
        "serve",
        serveArgs,
        this.#env({ PORT: String(this.servePort) }),
        this.servePort,
        this.o.runDir,
        note,
      ),
    );
    if (this.o.mode !== "embedded") {
      for (let i = 1; i <= this.o.workers; i++) {
        const port = await freePort();
        this.procs.set(
          `worker${i}`,
          new Proc(
            this.o.bin,
            `worker${i}`,
            ["worker", "--no-migrate", "--metrics-port", String(port)],
            this.#env({}),
            port,
            this.o.runDir,
            note,
          ),
        );
      }
    }
    await Promise.all([...this.procs.values()].map((p) => p.ensureRunning()));
  }

  proc(name: string): Proc {
    const p = this.procs.get(name);
    if (!p) throw new Error(`no process ${name}`);
    return p;
  }

  kill(name: string): Promise<void> {
    return this.proc(name).signal("SIGKILL");
  }

  term(name: string): Promise<void> {
    return this.proc(name).signal("SIGTERM");
  }

  restart(name: string): Promise<void> {
    return this.proc(name).ensureRunning();
  }

  pause(name: string): void {
    this.proc(name).pause();
  }

  resume(name: string): void {
    this.proc(name).resume();
  }

  async killRedis(): Promise<void> {
    await this.#redisStarting?.catch(() => {});
    await this.redis?.stop();
  }

  startRedis(): Promise<void> {
    const r = this.redis;
    if (!r || r.running) return Promise.resolve();
    this.#redisStarting ??= r.start().finally(() => {
      this.#redisStarting = undefined;
    });
    return this.#redisStarting;
  }

  /** Everything running and unpaused, the proxy passing, Redis up. */
  async heal(): Promise<void> {
    await this.proxy?.restore();
    await this.startRedis();
    for (const p of this.procs.values()) p.resume();
    await Promise.all([...this.procs.values()].map((p) => p.ensureRunning()));
  }

  get unplannedExits(): number {
    return [...this.procs.values()].reduce((s, p) => s + p.unplannedExits, 0);
  }

  /** SIGKILL everything (the results are collected first), then the proxy, Redis and the schema. */
  async stop(opts: { dropStorage: boolean }): Promise<void> {
    for (const p of this.procs.values()) p.resume();
    await Promise.all([...this.procs.values()].map((p) => p.signal("SIGKILL")));
    for (const p of this.procs.values()) p.log.end();
    await this.proxy?.close();
    await this.redis?.stop();
    if (opts.dropStorage) await this.storage?.drop();
  }

  killNow(): void {
    for (const p of this.procs.values()) p.killNow();
    if (this.redis?.pid) {
      try {
        process.kill(this.redis.pid, "SIGKILL");
      } catch {}
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
