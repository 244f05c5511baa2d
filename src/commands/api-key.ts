import type { Config } from "../config.js";
import { createApiKey, migrate, openStore, type Store } from "../store/index.js";
import { UsageError } from "./errors.js";

async function withStore<T>(config: Readonly<Config>, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore({ databaseUrl: config.databaseUrl, sqlitePath: config.sqlitePath });
  try {
    await migrate(store);
    return await fn(store);
  } finally {
    await store.close();
  }
}

const USER_ID = /^[^\s\p{Cc}]{1,255}$/u;

export async function apiKeyCreate(
  config: Readonly<Config>,
  opts: { user: string; admin: boolean; name?: string | undefined },
): Promise<void> {
  if (!USER_ID.test(opts.user)) {
    throw new UsageError("--user must be 1 to 255 characters with no spaces or control characters");
  }
  if (opts.name !== undefined && opts.name.length > 200)
    throw new UsageError("--name must be at most 200 characters");
  const { key, record } = await withStore(config, (store) =>
    createApiKey(store, {
      userId: opts.user,
      role: opts.admin ? "admin" : "user",
      name: opts.name ?? null,
      now: new Date().toISOString(),
    }),
  );
  // The key alone on stdout, so `KEY=$(continuum-webhooks api-key create --user u)` works.
  process.stdout.write(`${key}\n`);
  process.stderr.write(
    `created ${record.id} for user ${record.userId} (role ${record.role}); the key is shown only this once\n`,
  );
}

/**
 * One key as `--json` prints it: snake_case like every field of the HTTP API, and field by field,
 * so whatever the record gains later is not printed unless chosen here.
 */
function apiKeyJson(k: {
  id: string;
  userId: string;
  role: string;
  name: string | null;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}) {
  return {
    id: k.id,
    user_id: k.userId,
    role: k.role,
    name: k.name,
    prefix: k.prefix,
    created_at: k.createdAt,
    last_used_at: k.lastUsedAt,
    revoked_at: k.revokedAt,
  };
}

export async function apiKeyList(config: Readonly<Config>, opts: { json: boolean }): Promise<void> {
  const keys = await withStore(config, (store) => store.apiKeys.list());
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(keys.map(apiKeyJson))}\n`);
    return;
  }
  const rows = keys.map((k) => [
    k.id,
    k.userId,
    k.role,
    `${k.prefix}…`,
    k.createdAt,
    k.lastUsedAt ?? "-",
    k.revokedAt ? `revoked ${k.revokedAt}` : "active",
  ]);
  const head = ["ID", "USER", "ROLE", "KEY", "CREATED", "LAST USED", "STATUS"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) {
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd()}\n`,
    );
  }
}

export async function apiKeyRevoke(config: Readonly<Config>, id: string): Promise<void> {
  if (!/^key_[0-9A-Z]{26}$/.test(id)) throw new UsageError(`"${id}" is not an API key id (key_…)`);
  const done = await withStore(config, (store) => store.apiKeys.revoke(id, new Date().toISOString()));
  if (!done) throw new UsageError(`no active API key ${id}`);
  process.stdout.write(`revoked ${id}\n`);
}
