import { createHash, randomBytes } from "node:crypto";
import { newId } from "../ids.js";
import type { Store } from "./db.js";
import type { ApiKeyRole } from "./schema.js";

export interface ApiKeyRecord {
  id: string;
  userId: string;
  role: ApiKeyRole;
  name: string | null;
  /** The first characters of the key: enough to recognise it in a list, useless to an attacker. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const KEY_PREFIX = "cwk_";

/** Only the SHA-256 of a key is stored: a leaked database does not leak working keys. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

export async function createApiKey(
  store: Store,
  opts: { userId: string; role: ApiKeyRole; name?: string | null; now: string },
): Promise<{ key: string; record: ApiKeyRecord }> {
  const key = KEY_PREFIX + randomBytes(32).toString("base64url");
  const record: ApiKeyRecord = {
    id: newId("key"),
    userId: opts.userId,
    role: opts.role,
    name: opts.name ?? null,
    prefix: key.slice(0, KEY_PREFIX.length + 6),
    createdAt: opts.now,
    lastUsedAt: null,
    revokedAt: null,
  };
  await store.db
    .insertInto("api_keys")
    .values({
      id: record.id,
      key_hash: hashApiKey(key),
      key_prefix: record.prefix,
      user_id: record.userId,
      role: record.role,
      name: record.name,
      created_at: record.createdAt,
      last_used_at: null,
      revoked_at: null,
    })
    .execute();
  return { key, record };
}

const columns = [
  "id",
  "user_id",
  "role",
  "name",
  "key_prefix",
  "created_at",
  "last_used_at",
  "revoked_at",
] as const;

type Row = {
  id: string;
  user_id: string;
  role: ApiKeyRole;
  name: string | null;
  key_prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
};

function toRecord(r: Row): ApiKeyRecord {
  return {
    id: r.id,
    userId: r.user_id,
    role: r.role,
    name: r.name,
    prefix: r.key_prefix,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

/** The active (not revoked) key whose hash matches, or null. */
export async function findApiKey(store: Store, key: string): Promise<ApiKeyRecord | null> {
  const row = await store.db
    .selectFrom("api_keys")
    .select(columns)
    .where("key_hash", "=", hashApiKey(key))
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row ? toRecord(row) : null;
}

export async function listApiKeys(store: Store): Promise<ApiKeyRecord[]> {
  const rows = await store.db.selectFrom("api_keys").select(columns).orderBy("id", "asc").execute();
  return rows.map(toRecord);
}

export async function countActiveApiKeys(store: Store): Promise<number> {
  const row = await store.db
    .selectFrom("api_keys")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("revoked_at", "is", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Returns false when no such key exists or it was already revoked. */
export async function revokeApiKey(store: Store, id: string, now: string): Promise<boolean> {
  const res = await store.db
    .updateTable("api_keys")
    .set({ revoked_at: now })
    .where("id", "=", id)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

export async function touchApiKey(store: Store, id: string, now: string): Promise<void> {
  await store.db.updateTable("api_keys").set({ last_used_at: now }).where("id", "=", id).execute();
}
