/** Every statement on `api_keys` in PostgreSQL. */
import type pg from "pg";
import { API_KEY_COLUMNS, type ApiKeyRow, toApiKey } from "../common.js";
import type { ApiKeyStatements } from "../types.js";

export function pgApiKeys(pool: pg.Pool): ApiKeyStatements {
  return {
    async insert(r, keyHash) {
      await pool.query(
        `INSERT INTO api_keys (id, key_hash, key_prefix, user_id, role, name, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [r.id, keyHash, r.prefix, r.userId, r.role, r.name, r.createdAt],
      );
    },
    async findByHash(keyHash) {
      const res = await pool.query<ApiKeyRow>(
        `SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
        [keyHash],
      );
      return res.rows[0] ? toApiKey(res.rows[0]) : null;
    },
    async list() {
      return (await pool.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys ORDER BY id`)).rows.map(
        toApiKey,
      );
    },
    async countActive() {
      const res = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM api_keys WHERE revoked_at IS NULL",
      );
      return res.rows[0]!.n;
    },
    async revoke(id, now) {
      const res = await pool.query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        [now, id],
      );
      return (res.rowCount ?? 0) > 0;
    },
    async touch(id, now) {
      await pool.query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", [now, id]);
    },
  };
}
