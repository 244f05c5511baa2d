/** Worker heartbeats in PostgreSQL. */
import type pg from "pg";
import type { WorkerStatements } from "../types.js";

export function pgWorkers(pool: pg.Pool): WorkerStatements {
  return {
    async beat(owner, until) {
      await pool.query(
        `WITH gone AS (DELETE FROM worker_heartbeats WHERE expires_at < $2::timestamptz - interval '1 day')
         INSERT INTO worker_heartbeats (owner, expires_at) VALUES ($1, $2)
         ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at`,
        [owner, until],
      );
    },
    async alive(now) {
      const res = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM worker_heartbeats WHERE expires_at > $1",
        [now],
      );
      return res.rows[0]!.n;
    },
    async retire(owner) {
      await pool.query("DELETE FROM worker_heartbeats WHERE owner = $1", [owner]);
    },
  };
}
