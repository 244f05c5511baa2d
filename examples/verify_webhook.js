/**
 * Verify CONTINUUM webhooks in JavaScript (ESM, Node 18+): the core uses node:crypto only.
 *
 * Copy this file into your project, or use the published verifier instead:
 *   import { verifyWebhook } from "continuum-webhooks/verify";
 * Both implement the same checks and pass the same test vectors (docs/test-vectors.json).
 *
 * Every delivery carries two signature header families; either one is enough:
 * - `X-Continuum-Signature`: hex HMAC-SHA256 of `{timestamp}.{body}`, keyed by the whole secret
 *   string (`whsec_` included), with `X-Continuum-Timestamp`.
 * - Standard Webhooks: `webhook-signature` is `v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>`,
 *   keyed by the base64-decoded part of the secret after `whsec_`.
 * During a secret rotation each header holds one signature per secret, space-separated.
 *
 * Also here, ready to use:
 * - `expressWebhook()`: Express 5 middleware (mount it after `express.raw()`);
 * - `nextRouteHandler()`: a Next.js App Router `POST` route handler;
 * - `queueHandOff()`: verify, de-duplicate, push to a queue and answer 200 at once.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Deliveries whose timestamp is further than this from now (past or future) are refused: a
 * captured request can only be replayed within the window, and the timestamp is signed, so it
 * cannot be refreshed. Five minutes absorbs clock skew and slow networks.
 */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * Why a delivery was refused (answer 400): `reason` is one of
 * - `missing_header`: no signature header, or its family lacks the id/timestamp header;
 * - `malformed`: timestamp not unix seconds, a signature in the wrong shape, a body not JSON;
 * - `expired`: timestamp outside the tolerance, in the past or the future;
 * - `bad_signature`: no signature matches any of the secrets.
 */
export class WebhookVerificationError extends Error {
  /**
   * @param {"missing_header" | "malformed" | "expired" | "bad_signature"} reason
   * @param {string} message
   */
  constructor(reason, message) {
    super(message);
    this.name = "WebhookVerificationError";
    this.reason = reason;
  }
}

/**
 * A header getter over a Web `Headers` (Next.js, fetch) or Node's `req.headers` object.
 * @param {Headers | Record<string, string | string[] | undefined>} headers
 * @returns {(name: string) => string | undefined} name in lower case
 */
function headerGetter(headers) {
  if (typeof headers.get === "function") {
    const h = /** @type {Headers} */ (headers);
    return (name) => h.get(name) || undefined;
  }
  const lower = new Map();
  for (const [key, value] of Object.entries(headers)) {
    // A header sent twice arrives as an array: the signatures in both copies count.
    const text = Array.isArray(value) ? value.join(" ") : value;
    if (text) lower.set(key.toLowerCase(), String(text));
  }
  return (name) => lower.get(name);
}

/**
 * Constant-time comparison: the time taken does not depend on where two signatures differ, so an
 * attacker cannot discover a valid signature byte by byte from response times.
 */
function safeEqual(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function standardKey(secret) {
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
  // Never an empty key: anyone could compute that HMAC.
  if (key.length === 0) throw new TypeError("the webhook secret must be 'whsec_' followed by base64");
  return key;
}

/**
 * Verifies one delivery and returns the parsed event.
 *
 * @param {object} options
 * @param {string | Uint8Array} options.body the raw request body, exactly as received. Do not
 *   pass `JSON.stringify(req.body)`: re-serializing can change the bytes and break the HMAC.
 * @param {Headers | Record<string, string | string[] | undefined>} options.headers
 * @param {string | string[]} options.secret one secret, or several while you rotate
 * @param {number} [options.toleranceSeconds] default 300
 * @param {number} [options.now] unix seconds to check against (tests); default the clock
 * @returns {any} the parsed payload: `{ id, event, created_at, user_id, data }`
 * @throws {WebhookVerificationError}
 */
export function verifyWebhook({ body, headers, secret, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now }) {
  const secrets = typeof secret === "string" ? [secret] : [...secret];
  if (secrets.length === 0 || secrets.some((s) => typeof s !== "string" || s === "")) {
    throw new TypeError("verifyWebhook needs a non-empty secret");
  }
  const get = headerGetter(headers);

  // 1. Headers present. The Standard Webhooks family is used when its signature is there.
  const standardSignature = get("webhook-signature");
  const standard = standardSignature !== undefined;
  const signatureHeader = standardSignature ?? get("x-continuum-signature");
  if (signatureHeader === undefined) {
    throw new WebhookVerificationError("missing_header", "no webhook-signature or X-Continuum-Signature");
  }
  const id = get("webhook-id");
  if (standard && id === undefined) {
    throw new WebhookVerificationError("missing_header", "missing webhook-id header");
  }
  const timestamp = standard ? get("webhook-timestamp") : get("x-continuum-timestamp");
  if (timestamp === undefined) {
    throw new WebhookVerificationError("missing_header", "missing timestamp header");
  }

  // 2. Well-formed.
  if (!/^\d{1,15}$/.test(timestamp)) {
    throw new WebhookVerificationError("malformed", "timestamp header is not unix seconds");
  }
  const tokens = signatureHeader
    .split(/\s+/)
    .filter(Boolean)
    .map((t) => (t.endsWith(",") ? t.slice(0, -1) : t)); // "v1,a, v1,b": a comma-joined duplicate
  if (tokens.length === 0) throw new WebhookVerificationError("malformed", "empty signature header");
  const candidates = [];
  for (const token of tokens) {
    if (standard) {
      const comma = token.indexOf(",");
      if (comma <= 0 || comma === token.length - 1) {
        throw new WebhookVerificationError("malformed", "webhook-signature is not 'v1,<base64>'");
      }
      // Other versions (such as v1a, asymmetric) are skipped, as the Standard Webhooks spec asks.
      if (token.slice(0, comma) === "v1") candidates.push(token.slice(comma + 1));
    } else if (/^[0-9a-fA-F]{64}$/.test(token)) {
      candidates.push(token.toLowerCase());
    } else {
      throw new WebhookVerificationError("malformed", "X-Continuum-Signature is not hex HMAC-SHA256");
    }
  }

  // 3. Inside the replay window, both directions; exactly toleranceSeconds away still passes.
  const age = (now ?? Math.floor(Date.now() / 1000)) - Number(timestamp);
  if (age > toleranceSeconds) throw new WebhookVerificationError("expired", `timestamp is ${age} s old`);
  if (-age > toleranceSeconds) {
    throw new WebhookVerificationError("expired", `timestamp is ${-age} s in the future`);
  }

  // 4. Signature: every candidate against every secret, without stopping at the first match.
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
  let matched = false;
  for (const s of secrets) {
    const expected = standard
      ? createHmac("sha256", standardKey(s)).update(`${id}.${timestamp}.`).update(bytes).digest("base64")
      : createHmac("sha256", s).update(`${timestamp}.`).update(bytes).digest("hex");
    for (const candidate of candidates) if (safeEqual(candidate, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("bad_signature", "no signature matches the secret");

  // Only now is the body trusted enough to parse.
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new WebhookVerificationError("malformed", "body is not JSON");
  }
}

/**
 * The delivery id, the de-duplication key: the same on every retry of a delivery. `webhook-id`
 * comes first because the Standard Webhooks signature covers it; `X-Continuum-Delivery` is equal.
 * @param {Headers | Record<string, string | string[] | undefined>} headers
 */
export function deliveryIdOf(headers) {
  const get = headerGetter(headers);
  return get("webhook-id") ?? get("x-continuum-delivery");
}

/**
 * Remembers delivery ids for a while so that a retried delivery is processed once. Delivery is
 * at-least-once: when your 200 is lost on the way back, the same delivery comes again.
 *
 * In memory and per process: fine for one instance. With several instances or restarts, use shared
 * storage, e.g. Redis `SET dedupe:<id> 1 NX EX 86400` or a UNIQUE column written in the same
 * transaction as your side effects.
 */
export class Deduplicator {
  #ttlMs;
  #maxEntries;
  /** id → expiry (ms); a Map iterates in insertion order, so the oldest entry comes first. */
  #seen = new Map();

  constructor({ ttlSeconds = 24 * 3600, maxEntries = 100_000 } = {}) {
    this.#ttlMs = ttlSeconds * 1000;
    this.#maxEntries = maxEntries;
  }

  /** True the first time an id is seen (process it), false for a duplicate (skip it). */
  claim(deliveryId, nowMs = Date.now()) {
    for (const [id, expiry] of this.#seen) {
      if (expiry > nowMs) break;
      this.#seen.delete(id);
    }
    if (this.#seen.has(deliveryId)) return false;
    if (this.#seen.size >= this.#maxEntries) this.#seen.delete(this.#seen.keys().next().value);
    this.#seen.set(deliveryId, nowMs + this.#ttlMs);
    return true;
  }

  /** Forgets an id whose processing failed, so the retry is processed. */
  release(deliveryId) {
    this.#seen.delete(deliveryId);
  }
}

/**
 * Framework-independent handling: verify, de-duplicate, run `onEvent(event, deliveryId)`.
 * Returns `{ status, body }` for the response. If `onEvent` throws (or rejects), the id is
 * released and the error propagates: your framework answers 500 and CONTINUUM retries.
 */
export async function handleDelivery({ body, headers, secret, onEvent, dedupe, toleranceSeconds, now }) {
  let event;
  try {
    event = verifyWebhook({ body, headers, secret, toleranceSeconds, now });
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    return { status: 400, body: { error: "invalid_signature", reason: error.reason, detail: error.message } };
  }
  const deliveryId = deliveryIdOf(headers) ?? "";
  if (deliveryId && dedupe && !dedupe.claim(deliveryId)) {
    return { status: 200, body: { status: "duplicate", delivery_id: deliveryId } }; // 2xx: stop retrying
  }
  try {
    await onEvent(event, deliveryId);
  } catch (error) {
    if (deliveryId) dedupe?.release(deliveryId);
    throw error;
  }
  return { status: 200, body: { status: "ok", delivery_id: deliveryId } };
}

/**
 * Express 5 middleware. Mount it after `express.raw()` so `req.body` is the raw bytes:
 *
 *   app.post("/webhooks/continuum", express.raw({ type: "application/json" }),
 *     expressWebhook({ secret: process.env.CONTINUUM_WEBHOOK_SECRET, onEvent }));
 *
 * Do not let `express.json()` run first on this route: it would consume the body and the exact
 * bytes the signature covers would be gone.
 */
export function expressWebhook({ secret, onEvent, dedupe = new Deduplicator(), toleranceSeconds, now }) {
  return async (req, res) => {
    if (!Buffer.isBuffer(req.body)) {
      // A configuration mistake, not the sender's: fail loudly so it is noticed.
      throw new Error(
        "expressWebhook needs the raw body: mount express.raw({ type: 'application/json' }) first",
      );
    }
    // Express 5 forwards a rejected promise to the error handler (500), so CONTINUUM retries.
    const result = await handleDelivery({
      body: req.body,
      headers: req.headers,
      secret,
      onEvent,
      dedupe,
      toleranceSeconds,
      now: now?.(),
    });
    res.status(result.status).json(result.body);
  };
}

/**
 * A Next.js App Router route handler, using only the Web `Request`/`Response`. In
 * `app/api/webhooks/continuum/route.js`:
 *
 *   import { nextRouteHandler } from "@/lib/verify_webhook.js";
 *   export const runtime = "nodejs"; // node:crypto
 *   export const POST = nextRouteHandler({ secret: process.env.CONTINUUM_WEBHOOK_SECRET, onEvent });
 *
 * which is the same as writing `export async function POST(request) { ... }` by hand.
 */
export function nextRouteHandler({ secret, onEvent, dedupe = new Deduplicator(), toleranceSeconds, now }) {
  return async function POST(request) {
    // The raw body: request.text() would also do (bodies are UTF-8); never request.json().
    const body = new Uint8Array(await request.arrayBuffer());
    try {
      const result = await handleDelivery({
        body,
        headers: request.headers,
        secret,
        onEvent,
        dedupe,
        toleranceSeconds,
        now: now?.(),
      });
      return Response.json(result.body, { status: result.status });
    } catch (error) {
      console.error("webhook handler failed", error);
      return Response.json({ error: "handler_failed" }, { status: 500 }); // CONTINUUM will retry
    }
  };
}

/**
 * Hand-off to a queue: verify, de-duplicate, push `{ deliveryId, event }` and answer 200 right
 * away, without waiting for the work. CONTINUUM gives up on a request after 30 s and retries it,
 * so anything slow belongs behind a queue. `queue` needs only `push(job)`: an array, or an
 * adapter for BullMQ (`queue.add`), SQS, a database table... An in-process array is lost if the
 * process dies; use a durable queue when every event matters.
 *
 * Returns an Express handler (mount it after `express.raw()`, like `expressWebhook`).
 */
export function queueHandOff({ secret, queue, dedupe = new Deduplicator(), toleranceSeconds, now }) {
  return expressWebhook({
    secret,
    dedupe,
    toleranceSeconds,
    now,
    onEvent: async (event, deliveryId) => {
      await queue.push({ deliveryId, event, receivedAt: Date.now() });
    },
  });
}

/**
 * A minimal in-process queue with one worker, for the hand-off above. `push` returns at once;
 * `worker(job)` runs later, one job at a time. `idle()` resolves when the queue is empty.
 */
export class InProcessQueue {
  #jobs = [];
  #running = false;
  #idle = [];

  /** @param {(job: any) => unknown} worker */
  constructor(worker) {
    this.worker = worker;
  }

  push(job) {
    this.#jobs.push(job);
    if (!this.#running) setImmediate(() => this.#drain());
  }

  get size() {
    return this.#jobs.length;
  }

  idle() {
    return this.#jobs.length === 0 && !this.#running
      ? Promise.resolve()
      : new Promise((resolve) => this.#idle.push(resolve));
  }

  async #drain() {
    if (this.#running) return;
    this.#running = true;
    while (this.#jobs.length > 0) {
      const job = this.#jobs.shift();
      try {
        await this.worker(job);
      } catch (error) {
        console.error("job failed", job.deliveryId, error); // a real queue would retry it
      }
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
