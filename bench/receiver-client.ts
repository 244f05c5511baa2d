import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface ReceiverReport {
  verified: number;
  rejected: number;
  duplicates: number;
  latencies: number[];
  rss: number;
  /** The most requests in flight at once, per path, since the last reset. */
  maxInFlight: Record<string, number>;
  /** Per path, the sum over time of requests in flight (ms × requests) since the last reset. */
  busyMs: Record<string, number>;
  /** The most requests in flight at once over all paths, since the last reset. */
  maxInFlightAll: number;
  /** Requests to `/hang/…` paths held open now. */
  held: number;
}

/** The bench receiver (receiver-process.ts) in a child process, driven over IPC. */
export class ReceiverProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static async start(): Promise<ReceiverProcess> {
    const child = fork(fileURLToPath(new URL("./receiver-process.ts", import.meta.url)), [], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (m: { port: number }) => resolve(m.port));
      child.once("exit", (code) => reject(new Error(`receiver exited ${code}`)));
    });
    return new ReceiverProcess(child, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  setSecrets(secrets: Record<string, string>): void {
    this.child.send({ secrets });
  }

  /** Destroys the sockets of every held `/hang/…` request. */
  release(): void {
    this.child.send({ release: true });
  }

  report(reset = false): Promise<ReceiverReport> {
    return new Promise((resolve) => {
      this.child.once("message", (m: ReceiverReport) => resolve(m));
      this.child.send({ report: true, reset });
    });
  }

  /** Polls until `count` verified deliveries arrived (or the deadline); returns the last report. */
  async waitFor(count: number, timeoutMs: number): Promise<ReceiverReport> {
    const deadline = Date.now() + timeoutMs;
    const all: number[] = [];
    for (;;) {
      const r = await this.report();
      all.push(...r.latencies);
      if (r.verified >= count || Date.now() > deadline) return { ...r, latencies: all };
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    await new Promise((r) => this.child.once("exit", r));
  }
}
