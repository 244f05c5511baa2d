/** Every statement on `api_keys` in SQLite. */
import type SQLite from "better-sqlite3";
import { API_KEY_COLUMNS, type ApiKeyRow, toApiKey } from "../common.js";
import type { ApiKeyStatements } from "../types.js";

export function sqliteApiKeys(db: SQLite.Database): ApiKeyStatements {
  const st = {
    insert: db.prepare(
      `INSERT INTO api_keys (id, key_hash, key_prefix, user_id, role, name, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    find: db.prepare<[string], ApiKeyRow>(
      `SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`,
    ),
    list: db.prepare<[], ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys ORDER BY id`),
    count: db.prepare<[], { n: number }>("SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL"),
    revoke: db.prepare<[string, string]>(
      "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
    ),
    touch: db.prepare<[string, string]>("UPDATE api_keys SET last_used_at = ? WHERE id = ?"),
  };
  return {
    async insert(r, keyHash) {
      st.insert.run(r.id, keyHash, r.prefix, r.userId, r.role, r.name, r.createdAt);
    },
    async findByHash(keyHash) {
      const row = st.find.get(keyHash);
      return row ? toApiKey(row) : null;
    },
    list: async () => st.list.all().map(toApiKey),
    countActive: async () => st.count.get()!.n,
    revoke: async (id, now) => st.revoke.run(now, id).changes > 0,
    async touch(id, now) {
      st.touch.run(now, id);
    },
  };
}
