/**
 * Receiver-side verification of CONTINUUM webhooks (`continuum-webhooks/verify`).
 *
 * Deliberately imports nothing but node:crypto, so a receiver can depend on this entry point
 * without pulling in the delivery service.
 *
 * Checks, in this order, each failure a WebhookVerificationError with a `reason`:
 *  1. `missing_header`: no signature header, or the selected family lacks its id/timestamp header.
 *     The Standard Webhooks family (`webhook-*`) is used when `webhook-signature` is present,
 *     otherwise the `X-Continuum-*` family.
 *  2. `malformed`: a timestamp that is not unix seconds, a signature header with no signature in
 *     the expected shape, or (after a valid signature) a body that is not JSON.
 *  3. `expired`: the timestamp is more than `toleranceSeconds` away from now, in the past OR in the
 *     future (one reason for both: either way the request is outside the replay window; the
 *     message says which).
 *  4. `bad_signature`: no signature in the header matches any of the given secrets.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export type WebhookVerificationReason = "missing_header" | "malformed" | "expired" | "bad_signature";

export class WebhookVerificationError extends Error {
  override readonly name = "WebhookVerificationError";
  readonly reason: WebhookVerificationReason;
  constructor(reason: WebhookVerificationReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** A fetch `Headers`, or a plain object such as Node's `req.headers` (names in any case). */
export type HeaderSource =
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifyWebhookOptions {
  /** The raw request body, exactly as received: verify before any JSON parsing or re-encoding. */
  body: string | Uint8Array;
  headers: HeaderSource;
  /** The endpoint's secret, or several during a rotation on the receiver's side. */
  secret: string | readonly string[];
  /** How far the timestamp may be from now, in either direction. Default 300 seconds. */
  toleranceSeconds?: number;
  /** Unix seconds to check the timestamp against; default the current time. */
  now?: number;
}

const TIMESTAMP = /^\d{1,15}$/;
const HEX_SIGNATURE = /^[0-9a-fA-F]{64}$/;

function headerReader(source: HeaderSource): (name: string) => string | undefined {
  if (typeof source.get === "function") {
    const headers = source as { get(name: string): string | null };
    return (name) => headers.get(name) || undefined;
  }
  const lower = new Map<string, string>();
  for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
    // Duplicated headers arrive as arrays; their signatures are as valid as space-separated ones.
    const text = typeof value === "string" ? value : Array.isArray(value) ? value.join(" ") : undefined;
    if (text) lower.set(key.toLowerCase(), text);
  }
  return (name) => lower.get(name);
}

function tokens(header: string): string[] {
  // A comma-joined duplicate header ("v1,a, v1,b") leaves a trailing comma on all but the last token.
  return header
    .split(/\s+/)
    .filter((t) => t !== "")
    .map((t) => (t.endsWith(",") ? t.slice(0, -1) : t));
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function standardKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
}

/**
 * Verifies a delivery and returns its parsed payload. Throws WebhookVerificationError when the
 * request must be rejected (answer 400 or 401), and TypeError when called without a secret.
 */
export function verifyWebhook<T = unknown>(options: VerifyWebhookOptions): T {
  const { body, headers, toleranceSeconds = 300 } = options;
  if (!(toleranceSeconds >= 0)) throw new TypeError("toleranceSeconds must be a number >= 0");
  const secrets = typeof options.secret === "string" ? [options.secret] : [...options.secret];
  if (secrets.length === 0 || secrets.some((s) => typeof s !== "string" || s === "")) {
    throw new TypeError("verifyWebhook needs a non-empty secret");
  }
  const get = headerReader(headers);

  const standardSignature = get("webhook-signature");
  const continuumSignature = get("x-continuum-signature");
  const standard = standardSignature !== undefined;
  const signatureHeader = standardSignature ?? continuumSignature;
  if (signatureHeader === undefined) {
    throw new WebhookVerificationError(
      "missing_header",
      "no webhook-signature or X-Continuum-Signature header",
    );
  }
  const id = get("webhook-id");
  const timestampHeader = standard ? get("webhook-timestamp") : get("x-continuum-timestamp");
  if (standard && id === undefined) {
    throw new WebhookVerificationError("missing_header", "missing webhook-id header");
  }
  if (timestampHeader === undefined) {
    const name = standard ? "webhook-timestamp" : "X-Continuum-Timestamp";
    throw new WebhookVerificationError("missing_header", `missing ${name} header`);
  }

  if (!TIMESTAMP.test(timestampHeader)) {
    throw new WebhookVerificationError("malformed", "timestamp header is not unix seconds");
  }
  const signatures = tokens(signatureHeader);
  if (signatures.length === 0) {
    throw new WebhookVerificationError("malformed", "empty signature header");
  }
  const candidates: string[] = [];
  for (const token of signatures) {
    if (standard) {
      const comma = token.indexOf(",");
      // Other versions (v1a: asymmetric) are ignored, as the Standard Webhooks spec asks.
      if (comma > 0 && comma < token.length - 1 && token.slice(0, comma) === "v1") {
        candidates.push(token.slice(comma + 1));
      } else if (comma <= 0 || comma === token.length - 1) {
        throw new WebhookVerificationError("malformed", "webhook-signature is not 'v1,<base64>'");
      }
    } else if (HEX_SIGNATURE.test(token)) {
      candidates.push(token.toLowerCase());
    } else {
      throw new WebhookVerificationError("malformed", "X-Continuum-Signature is not hex HMAC-SHA256");
    }
  }

  const timestamp = Number(timestampHeader);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (now - timestamp > toleranceSeconds) {
    throw new WebhookVerificationError("expired", `timestamp is ${now - timestamp} s old`);
  }
  if (timestamp - now > toleranceSeconds) {
    throw new WebhookVerificationError("expired", `timestamp is ${timestamp - now} s in the future`);
  }

  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  let matched = false;
  for (const secret of secrets) {
    const expected = standard
      ? createHmac("sha256", standardKey(secret))
          .update(`${id}.${timestampHeader}.`)
          .update(bytes)
          .digest("base64")
      : createHmac("sha256", secret).update(`${timestampHeader}.`).update(bytes).digest("hex");
    // No early exit: the time taken must not depend on which candidate matched.
    for (const candidate of candidates) if (sameText(candidate, expected)) matched = true;
  }
  if (!matched) {
    throw new WebhookVerificationError("bad_signature", "no signature matches the secret");
  }

  const text =
    typeof body === "string" ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new WebhookVerificationError("malformed", "body is not JSON");
  }
}
