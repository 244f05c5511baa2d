/** Worker heartbeats in SQLite. */
import type SQLite from "better-sqlite3";
import type { WorkerStatements } from "../types.js";

export function sqliteWorkers(db: SQLite.Database): WorkerStatements {
  const st = {
    beat: db.prepare<[string, string]>(
      `INSERT INTO worker_heartbeats (owner, expires_at) VALUES (?, ?)
       ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at`,
    ),
    alive: db.prepare<[string], { n: number }>(
      "SELECT count(*) AS n FROM worker_heartbeats WHERE expires_at > ?",
    ),
    retire: db.prepare<[string]>("DELETE FROM worker_heartbeats WHERE owner = ?"),
    // Heartbeats of processes long gone would pile up: drop them as new ones are written.
    prune: db.prepare<[string]>("DELETE FROM worker_heartbeats WHERE expires_at < ?"),
  };
  return {
    async beat(owner, until) {
      st.beat.run(owner, until);
      st.prune.run(new Date(Date.parse(until) - 86_400_000).toISOString());
    },
    alive: async (now) => st.alive.get(now)!.n,
    async retire(owner) {
      st.retire.run(owner);
    },
  };
}
