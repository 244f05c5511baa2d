/** What the kernel says about a process: CPU seconds used, from /proc/<pid>/stat. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const TICK = 100; // clock ticks per second, for /proc/<pid>/stat

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

/** CPU seconds of every process `pgrep` finds with these arguments. */
export function cpuOfAll(args: string[]): number {
  try {
    const pids = execFileSync("pgrep", args, { encoding: "utf8" }).trim().split("\n");
    return pids.reduce((s, p) => s + cpuOf(Number(p)), 0);
  } catch {
    return 0;
  }
}

/** CPU seconds of every postgres process (shared with whatever else uses that server). */
export const postgresCpu = () => cpuOfAll(["-x", "postgres"]);

/** The receiver is our child process running receiver-process.ts. */
export const receiverCpu = () => cpuOfAll(["-P", String(process.pid), "-f", "receiver-process"]);

/** CPU seconds this process (all its threads) used since `since`. */
export function ownCpu(since?: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

/** Peak resident set size of a process, from the kernel's own high-water mark. */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** The value at quantile `p` (0..1) of an ascending array. */
export function pct(sorted: number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
