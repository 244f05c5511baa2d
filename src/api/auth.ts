/**
 * API key authentication and tenant scoping.
 *
 * Keys are looked up by their SHA-256 (the only form stored) and the answer is cached for
 * `cacheTtlMs` (5 s by default), so authentication is not a database read per request. The price:
 * a revoked key keeps working for up to that long in each API process. Unknown keys are cached
 * too (so a flood of bad keys cannot turn into a flood of queries), in a bounded map.
 *
 * Scoping rules (CONTRACT §6):
 * - a user key acts for its own user only; another user's webhook or delivery answers 404, exactly
 *   as if it did not exist, so ids leak nothing;
 * - naming another user in a `user_id` field or parameter with a user key is refused with 403: it is
 *   the client's own claim that is wrong, not a resource that might or might not exist;
 * - an admin key acts for any user: `user_id` names the user, and creating or emitting without one
 *   is refused (422) rather than done for a user called "admin"; listing without one, or
 *   addressing a webhook by id, acts for everyone.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { isLabel, labelReason } from "../emitter.js";
import type { ApiKeyRecord } from "../models.js";
import type { Store } from "../store/index.js";
import { findApiKey, hashApiKey } from "../store/index.js";
import { ProblemError } from "./errors.js";

export interface AuthContext {
  keyId: string;
  userId: string;
  role: "user" | "admin";
}

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the API's authentication hook; null outside `/api/v1`. */
    auth: AuthContext | null;
  }
}

export interface AuthOptions {
  /** How long a key lookup is trusted. Default 5000 ms. */
  cacheTtlMs?: number;
  /** How often at most `last_used_at` is written per key. Default 60 000 ms. */
  touchIntervalMs?: number;
  /** Entries kept at most (oldest dropped first). Default 10 000. */
  cacheSize?: number;
  now?: () => number;
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/=-]{1,512}) *$/i;
const REALM = 'Bearer realm="continuum-webhooks"';
const KEY_PREFIX = "cwk_";

/** Schemes people send by habit from other APIs: named back to them, as nothing secret. */
const KNOWN_SCHEMES = new Set(["basic", "token", "digest", "apikey", "api-key", "key", "bot", "hmac", "jwt"]);

/**
 * What is wrong with an Authorization header that is not `Bearer <key>`, saying how to write it.
 * The header is never quoted back: it may be a key.
 */
function malformedHeader(header: string): string {
  const how = "send it as `Authorization: Bearer <key>`";
  const trimmed = header.trim();
  const [first = "", ...rest] = trimmed.split(/\s+/);
  if (/^bearer$/i.test(first)) {
    return rest.length === 0
      ? `the Authorization header has the Bearer scheme but no key: ${how}`
      : `the key after \`Bearer \` is malformed: an API key is one word of at most 512 characters (cwk_…); ${how}`;
  }
  if (rest.length === 0) {
    return `the Authorization header holds no scheme, only a value: put \`Bearer \` before the API key; ${how}`;
  }
  const scheme = KNOWN_SCHEMES.has(first.toLowerCase())
    ? `the ${first} scheme`
    : "a scheme other than Bearer";
  return `the Authorization header uses ${scheme}: API keys go in the Bearer scheme; ${how}`;
}

interface CacheEntry {
  record: ApiKeyRecord | null;
  expiresAt: number;
}

export class ApiKeyAuthenticator {
  readonly #cache = new Map<string, CacheEntry>();
  readonly #touched = new Map<string, number>();
  readonly #ttl: number;
  readonly #touchEvery: number;
  readonly #size: number;
  readonly #now: () => number;

  constructor(
    private readonly store: Store,
    private readonly log: { warn(o: object, m: string): void },
    options: AuthOptions = {},
  ) {
    this.#ttl = options.cacheTtlMs ?? 5000;
    this.#touchEvery = options.touchIntervalMs ?? 60_000;
    this.#size = options.cacheSize ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** The key's record, or null when it is unknown or revoked. */
  async lookup(key: string): Promise<ApiKeyRecord | null> {
    const now = this.#now();
    const hash = hashApiKey(key);
    const hit = this.#cache.get(hash);
    if (hit && hit.expiresAt > now) return hit.record;
    const record = await findApiKey(this.store, key);
    this.#cache.delete(hash);
    if (this.#cache.size >= this.#size) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
    this.#cache.set(hash, { record, expiresAt: now + this.#ttl });
    return record;
  }

  #touch(id: string, now: number): void {
    const last = this.#touched.get(id);
    if (last !== undefined && now - last < this.#touchEvery) return;
    this.#touched.set(id, now);
    this.store.apiKeys
      .touch(id, new Date(now).toISOString())
      .catch((err: unknown) =>
        this.log.warn(
          { err: err instanceof Error ? err.message : String(err), key_id: id },
          "could not record key use",
        ),
      );
  }

  /** The onRequest hook for every `/api/v1` route. */
  hook = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined) {
      throw new ProblemError("unauthorized", "send an API key as `Authorization: Bearer <key>`", undefined, {
        "www-authenticate": REALM,
      });
    }
    const m = BEARER.exec(header);
    if (!m) {
      throw new ProblemError("unauthorized", malformedHeader(header), undefined, {
        "www-authenticate": `${REALM}, error="invalid_request"`,
      });
    }
    const key = m[1]!;
    const record = await this.lookup(key);
    if (!record) {
      const detail = key.startsWith(KEY_PREFIX)
        ? "the API key is not valid or has been revoked"
        : `the API key is not valid: API keys start with ${KEY_PREFIX} (\`continuum-webhooks api-key create --user U\` makes one)`;
      throw new ProblemError("unauthorized", detail, undefined, {
        "www-authenticate": `${REALM}, error="invalid_token"`,
      });
    }
    // A key used at least once a minute is looked up from cache, but its last use is still
    // recorded every minute.
    this.#touch(record.id, this.#now());
    request.auth = { keyId: record.id, userId: record.userId, role: record.role };
  };
}

export function requireAuth(request: FastifyRequest): AuthContext {
  if (!request.auth)
    throw new ProblemError("unauthorized", "send an API key as `Authorization: Bearer <key>`");
  return request.auth;
}

/** Whose webhooks a request may address by id: the key's user, or everyone's for an admin. */
export function scope(request: FastifyRequest): string | undefined {
  const auth = requireAuth(request);
  return auth.role === "admin" ? undefined : auth.userId;
}

/**
 * The user a request acts for: the `user_id` it names (checked by the emitter's rule for user
 * ids), which a user key may only set to its own user and may leave out; an admin key has no
 * user of its own to fall back on, so it must name one.
 */
export function actingUser(request: FastifyRequest, requested: unknown, field = "user_id"): string {
  const auth = requireAuth(request);
  if (requested === undefined) {
    if (auth.role !== "admin") return auth.userId;
    throw new ProblemError(
      "invalid_field",
      `an admin key acts for no user of its own: name the user in ${field}`,
      [{ field, reason: "is required with an admin key" }],
    );
  }
  if (!isLabel(requested)) {
    const reason = labelReason(field, requested);
    throw new ProblemError("invalid_field", reason, [{ field, reason }]);
  }
  if (requested === auth.userId || auth.role === "admin") return requested;
  throw new ProblemError("forbidden", "a user key can only act for its own user", [
    { field, reason: "must be the key's own user (or omitted)" },
  ]);
}
