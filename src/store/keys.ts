/**
 * API keys as tokens: made here, stored only as their SHA-256 (a leaked database does not leak
 * working keys). The statements are each backend's `apiKeys`.
 */
import { createHash, randomBytes } from "node:crypto";
import { newId } from "../ids.js";
import type { ApiKeyRecord, ApiKeyRole } from "../models.js";
import type { Store } from "./types.js";

const KEY_PREFIX = "cwk_";

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
  await store.apiKeys.insert(record, hashApiKey(key));
  return { key, record };
}

/** The active (not revoked) key, or null. */
export function findApiKey(store: Store, key: string): Promise<ApiKeyRecord | null> {
  return store.apiKeys.findByHash(hashApiKey(key));
}
