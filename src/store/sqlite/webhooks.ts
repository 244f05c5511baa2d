/** Every statement on `webhooks` in SQLite, except the engine's counters (engine.ts). */
import type SQLite from "better-sqlite3";
import type { WebhookRecord } from "../../models.js";
import {
  isUniqueViolation,
  jsonOrNull,
  toWebhook,
  WEBHOOK_COLUMNS,
  type WebhookRow,
  webhookPatchColumns,
} from "../common.js";
import { DuplicateWebhookError, type WebhookStatements } from "../types.js";

export function sqliteWebhooks(db: SQLite.Database): WebhookStatements {
  const st = {
    insert: db.prepare<unknown[], WebhookRow>(
      `INSERT INTO webhooks (id, user_id, url, secret, events, active, name, description, metadata, retry_schedule,
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${WEBHOOK_COLUMNS}`,
    ),
    get: db.prepare<[string], WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?`),
    getOwn: db.prepare<[string, string], WebhookRow>(
      `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND user_id = ?`,
    ),
    list: db.prepare<[string, number], WebhookRow>(
      `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id > ? ORDER BY id LIMIT ?`,
    ),
    listOwn: db.prepare<[string, string, number], WebhookRow>(
      `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?`,
    ),
    delete: db.prepare<[string]>("DELETE FROM webhooks WHERE id = ?"),
    deleteOwn: db.prepare<[string, string]>("DELETE FROM webhooks WHERE id = ? AND user_id = ?"),
  };
  const duplicate = (err: unknown) =>
    isUniqueViolation(err) ? new DuplicateWebhookError("a webhook for this URL already exists") : err;

  return {
    async insert(w) {
      try {
        const row = st.insert.get(
          w.id,
          w.userId,
          w.url,
          w.secret,
          w.events.join(","),
          w.active === false ? 0 : 1,
          w.name ?? null,
          w.description ?? null,
          jsonOrNull(w.metadata),
          jsonOrNull(w.retrySchedule),
          w.now,
          w.now,
        );
        return toWebhook(row!);
      } catch (err) {
        throw duplicate(err);
      }
    },
    async get(id, userId) {
      const row = userId === undefined ? st.get.get(id) : st.getOwn.get(id, userId);
      return row ? toWebhook(row) : null;
    },
    async list(userId, page) {
      const after = page.after ?? "";
      const rows =
        userId === undefined ? st.list.all(after, page.limit) : st.listOwn.all(userId, after, page.limit);
      return rows.map(toWebhook);
    },
    async update(id, userId, patch, now): Promise<WebhookRecord | null> {
      const set = webhookPatchColumns(patch, (v) => (v ? 1 : 0));
      set.push(["updated_at", now]);
      const where = userId === undefined ? "id = ?" : "id = ? AND user_id = ?";
      const sql = `UPDATE webhooks SET ${set.map(([c]) => `${c} = ?`).join(", ")} WHERE ${where} RETURNING ${WEBHOOK_COLUMNS}`;
      try {
        const params = [...set.map(([, v]) => v), id, ...(userId === undefined ? [] : [userId])];
        const row = db.prepare<unknown[], WebhookRow>(sql).get(...params);
        return row ? toWebhook(row) : null;
      } catch (err) {
        throw duplicate(err);
      }
    },
    async delete(id, userId) {
      const res = userId === undefined ? st.delete.run(id) : st.deleteOwn.run(id, userId);
      return res.changes > 0;
    },
  };
}
