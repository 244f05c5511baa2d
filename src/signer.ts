/**
 * Canonical JSON, signatures for both header families, and secrets.
 *
 * The body we send must be byte-for-byte what Python's `json.dumps(payload, sort_keys=True)` prints,
 * so that receivers written against the original CONTINUUM examples (which re-serialize the parsed
 * payload before checking the HMAC) and receivers that verify the raw body both succeed.
 *
 * Number rules (JS has one number type, Python two). The body is what CPython prints for
 * `json.loads` of the text JSON.stringify makes of the value: a JS producer's JSON and a Python
 * receiver's re-serialization of our body then agree on every number.
 * - An integral number below 1e21 prints as JSON.stringify prints it: digits, no exponent, which
 *   Python reads as an int and prints back unchanged (`5`, `1e20` → `100000000000000000000`).
 *   Beyond 2**53 these are JS's shortest round-trip digits padded with zeros (`2**60` →
 *   `1152921504606847000`, not its exact `1152921504606846976`): the same double, spelled as every
 *   JS producer spells it.
 * - Negative zero prints as `0`, as JSON.stringify prints it (Python reads the int 0).
 * - Everything else prints as Python's `repr(float)`: the same shortest round-trip digits as JS,
 *   with an exponent from 1e16 up and below 1e-4. JS agrees at both ends except between 1e-6 and
 *   1e-4 (`0.00001`, where Python prints `1e-05`) and in the exponent's width (`1e-7` vs `1e-07`).
 *   Non-integral doubles are all below 2**52 < 1e16, and from 1e21 up JS switches to exponents
 *   too, in Python's very spelling (`1e+21`, `1.7976931348623157e+308`): both print those as is.
 */
import { createHmac, randomBytes } from "node:crypto";

/** Thrown for a value that has no JSON form (NaN, Infinity, undefined, a function, a cycle, …). */
export class CanonicalJsonError extends TypeError {
  override readonly name = "CanonicalJsonError";
  /** Where in the value the problem is, e.g. `$.data.scores[3]`. */
  readonly path: string;
  constructor(problem: string, path: string) {
    super(`${problem} at ${path} cannot be serialized to JSON`);
    this.path = path;
  }
}

/** Internal signal from the fast path; a second, slower walk then finds what and where. */
class Unserializable {}
const UNSERIALIZABLE = new Unserializable();

// Deeper than this is either a cycle or nothing a receiver could parse (Python's json gives up near
// its recursion limit of 1000 too). Bounding depth lets the fast path skip cycle bookkeeping.
const MAX_DEPTH = 1000;

// Everything JSON.stringify leaves raw but Python escapes: DEL and every non-ASCII UTF-16 unit.
// Paired surrogates are escaped unit by unit, which is exactly Python's `\ud83d\ude00` form; lone
// surrogates were already escaped (lowercase) by JSON.stringify, as Python does.
const NON_ASCII = /[\u007f-\uffff]/;
const NON_ASCII_ALL = /[\u007f-\uffff]/g;
const SURROGATE = /[\ud800-\udfff]/;
// Printable ASCII except `"` and `\`: the common case, quoted as is without JSON.stringify's cost.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function escapeUnit(ch: string): string {
  return `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

function quote(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  // JSON.stringify already escapes `"`, `\` and C0 controls with Python's exact spelling.
  const json = JSON.stringify(s);
  if (!NON_ASCII.test(json)) return json;
  // The escaped text is ASCII but V8 keeps it in the source's two-byte representation, which
  // would make the whole body two-byte and every later concatenation and HMAC of it ~1.5x slower.
  // A latin1 round trip re-encodes it one byte per character.
  return Buffer.from(json.replace(NON_ASCII_ALL, escapeUnit), "latin1").toString("latin1");
}

function formatNumber(n: number): string {
  // String() is JSON.stringify's spelling (and "0" for -0); see the number rules at the top.
  if (Number.isInteger(n)) return String(n);
  if (!Number.isFinite(n)) throw UNSERIALIZABLE;
  if (n >= 1e-4 || n <= -1e-4) return String(n);
  // toExponential() without an argument gives the shortest round-trip digits; Python pads the
  // exponent to two digits.
  const s = n.toExponential();
  const e = s.indexOf("e");
  const digits = s.slice(e + 2);
  return `${s.slice(0, e + 2)}${digits.length < 2 ? `0${digits}` : digits}`;
}

/** Python orders str keys by code point; JS's default sort compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(j)!;
    if (ca !== cb) return ca - cb;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return a.length - i - (b.length - j);
}

function sortedKeys(obj: object): string[] {
  const keys = Object.keys(obj);
  if (keys.length > 16) keys.sort();
  else {
    // Insertion sort: about twice as fast as Array#sort on the handful of keys of a typical
    // object, and linear when the keys already come in order.
    for (let i = 1; i < keys.length; i++) {
      const key = keys[i]!;
      let j = i - 1;
      for (; j >= 0 && keys[j]! > key; j--) keys[j + 1] = keys[j]!;
      keys[j + 1] = key;
    }
  }
  // UTF-16 order equals code point order unless a surrogate is involved (U+E000..U+FFFF vs astral).
  for (const k of keys) if (SURROGATE.test(k)) return keys.sort(compareCodePoints);
  return keys;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function toJSONOf(value: object): ((this: unknown) => unknown) | undefined {
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  return typeof toJSON === "function" ? (toJSON as (this: unknown) => unknown) : undefined;
}

/** The hot path: no path or cycle bookkeeping, any problem throws UNSERIALIZABLE. */
function write(value: unknown, depth: number): string {
  if (typeof value === "string") return quote(value);
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (value === null) return "null";
  if (typeof value !== "object" || depth === MAX_DEPTH) throw UNSERIALIZABLE;

  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    let out = `[${write(value[0], depth + 1)}`;
    for (let i = 1; i < value.length; i++) out += `, ${write(value[i], depth + 1)}`;
    return `${out}]`;
  }
  // Dates and the like serialize as JSON.stringify would serialize them.
  const toJSON = toJSONOf(value);
  if (toJSON !== undefined) return write(toJSON.call(value), depth + 1);
  if (!isPlainObject(value)) throw UNSERIALIZABLE;

  const record = value as Record<string, unknown>;
  const keys = sortedKeys(record);
  if (keys.length === 0) return "{}";
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    out += `${i === 0 ? "" : ", "}${quote(key)}: ${write(record[key], depth + 1)}`;
  }
  return `${out}}`;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** The slow path, run only after a failure: the same walk, keeping the path and the ancestors. */
function diagnose(value: unknown, path: string, ancestors: object[]): CanonicalJsonError | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : new CanonicalJsonError(String(value), path);
    case "object":
      break;
    default:
      return new CanonicalJsonError(value === undefined ? "undefined" : `a ${typeof value}`, path);
  }
  if (value === null) return undefined;
  if (ancestors.includes(value)) return new CanonicalJsonError("a circular reference", path);
  if (ancestors.length === MAX_DEPTH) return new CanonicalJsonError(`nesting deeper than ${MAX_DEPTH}`, path);
  ancestors.push(value);
  let found: CanonicalJsonError | undefined;
  const toJSON = Array.isArray(value) ? undefined : toJSONOf(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && !found; i++) found = diagnose(value[i], `${path}[${i}]`, ancestors);
  } else if (toJSON !== undefined) {
    found = diagnose(toJSON.call(value), path, ancestors);
  } else if (!isPlainObject(value)) {
    found = new CanonicalJsonError(`a ${value.constructor?.name ?? "non-plain"} object`, path);
  } else {
    for (const key of sortedKeys(value)) {
      const step = IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
      found = diagnose((value as Record<string, unknown>)[key], path + step, ancestors);
      if (found) break;
    }
  }
  ancestors.pop();
  return found;
}

/**
 * `json.dumps(value, sort_keys=True)` as Python prints it (see the number rules at the top).
 * Unlike JSON.stringify, never drops anything silently: undefined, functions, symbols, BigInt,
 * NaN, ±Infinity, cycles and non-plain objects without `toJSON` (Map, Set, class instances) throw
 * CanonicalJsonError. The output is always pure ASCII.
 */
export function canonicalJson(value: unknown): string {
  let out: string;
  try {
    out = write(value, 0);
  } catch (e) {
    if (e !== UNSERIALIZABLE) throw e;
    throw diagnose(value, "$", []) ?? new CanonicalJsonError("an unserializable value", "$");
  }
  // `+=` built a deep rope. Reading a character makes V8 flatten it in place, once; otherwise every
  // `${timestamp}.${body}` of every signature would copy it out of the rope again (~2 µs per KiB).
  out.charCodeAt(0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Secrets

const SECRET_PREFIX = "whsec_";
// Canonical base64 only: Buffer's decoder is lenient (skips junk, accepts URL-safe letters and
// non-zero padding bits), so two different strings could otherwise key the same HMAC.
const CANONICAL_BASE64 =
  /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?$/;

/** `whsec_` + base64 of 32 random bytes: the Standard Webhooks secret format. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString("base64");
}

/** The bytes after `whsec_`, or null if the rest is not canonical base64 of 24–64 bytes. */
function standardKey(secret: string): Buffer | null {
  if (!secret.startsWith(SECRET_PREFIX)) return null;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!CANONICAL_BASE64.test(encoded)) return null;
  const key = Buffer.from(encoded, "base64");
  return key.length >= 24 && key.length <= 64 ? key : null;
}

/** Standard Webhooks' rule: `whsec_` + canonical base64 of 24 to 64 bytes. */
export function isValidSecret(secret: unknown): secret is string {
  return typeof secret === "string" && standardKey(secret) !== null;
}

/**
 * Enough to tell two secrets apart in a UI, never enough to matter: 4 base64 characters are
 * 24 of 256 bits. Short or foreign strings reveal nothing at all.
 */
export function maskSecret(secret: string): string {
  if (!secret.startsWith(SECRET_PREFIX)) return "…";
  if (secret.length < SECRET_PREFIX.length + 16) return `${SECRET_PREFIX}…`;
  return `${secret.slice(0, SECRET_PREFIX.length + 4)}…`;
}

// ---------------------------------------------------------------------------------------------
// Signatures

export const USER_AGENT = "CONTINUUM-Webhooks/1.0";

// A type alias, not an interface, so it is assignable to Record<string, string> (fetch, undici, got).
export type WebhookHeaders = {
  "Content-Type": "application/json";
  "User-Agent": string;
  /** Hex HMAC-SHA256 of `{timestamp}.{body}` per secret, space-separated; keyed by the whole secret string. */
  "X-Continuum-Signature": string;
  "X-Continuum-Timestamp": string;
  "X-Continuum-Event": string;
  "X-Continuum-Delivery": string;
  "webhook-id": string;
  "webhook-timestamp": string;
  /** `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>` per secret, space-separated. */
  "webhook-signature": string;
};

export interface SignBodyOptions {
  /** The current secret; its signatures come first. */
  secret: string;
  /** Other secrets still valid (the previous one during a rotation): each adds one signature. */
  secrets?: readonly string[];
  /** An already-canonical body (see canonicalJson); signed exactly as given. */
  body: string;
  /** The delivery id: the same on every retry, so receivers can de-duplicate. */
  deliveryId: string;
  /** Unix seconds of this attempt. */
  timestamp: number;
  event: string;
}

export interface SignWebhookOptions extends Omit<SignBodyOptions, "body"> {
  payload: unknown;
}

export interface SignedWebhook {
  body: string;
  headers: WebhookHeaders;
}

/** Thrown for a secret that cannot key a Standard Webhooks signature. Never includes the secret. */
export class InvalidSecretError extends TypeError {
  override readonly name = "InvalidSecretError";
  constructor() {
    super("webhook secret must be 'whsec_' followed by base64 of 24 to 64 bytes");
  }
}

/**
 * Headers for one attempt. The engine canonicalizes a payload once and calls this per attempt,
 * because every attempt carries a fresh timestamp.
 */
export function signBody(options: SignBodyOptions): WebhookHeaders {
  const { secret, secrets = [], body, deliveryId, timestamp, event } = options;
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new TypeError("timestamp must be a non-negative integer number of unix seconds");
  }
  const ts = String(timestamp);
  const continuum: string[] = [];
  const standard: string[] = [];
  // A Set keeps first-insertion order: the current secret's signatures stay first.
  for (const s of secrets.length === 0 ? [secret] : new Set([secret, ...secrets])) {
    const key = standardKey(s);
    if (key === null) throw new InvalidSecretError();
    // One update() each: every call crosses into C++, which costs more than the concatenation.
    continuum.push(createHmac("sha256", s).update(`${ts}.${body}`).digest("hex"));
    standard.push(`v1,${createHmac("sha256", key).update(`${deliveryId}.${ts}.${body}`).digest("base64")}`);
  }
  return {
    "Content-Type": "application/json",
    "User-Agent": USER_AGENT,
    "X-Continuum-Signature": continuum.join(" "),
    "X-Continuum-Timestamp": ts,
    "X-Continuum-Event": event,
    "X-Continuum-Delivery": deliveryId,
    "webhook-id": deliveryId,
    "webhook-timestamp": ts,
    "webhook-signature": standard.join(" "),
  };
}

/** Canonicalizes the payload and signs it: the body to POST and every header that goes with it. */
export function signWebhook(options: SignWebhookOptions): SignedWebhook {
  const body = canonicalJson(options.payload);
  const { secret, secrets, deliveryId, timestamp, event } = options;
  return { body, headers: signBody({ secret, secrets, body, deliveryId, timestamp, event }) };
}
