/**
 * Writes docs/test-vectors.json: `npx tsx scripts/gen-test-vectors.ts`.
 *
 * Deterministic on purpose (fixed secrets, ids and times): the file is committed, receivers in
 * other languages check themselves against it, and a test asserts that re-running this script
 * reproduces the committed file byte for byte.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { signWebhook, type WebhookHeaders } from "../src/signer.js";

export const TOLERANCE_SECONDS = 300;
const T0 = 1_767_225_600; // 2026-01-01T00:00:00Z

/** A fixed, valid secret: `whsec_` + base64 of 32 bytes derived from a label. */
function fixedSecret(label: string): string {
  return `whsec_${createHash("sha256").update(`continuum-webhooks test vector ${label}`).digest("base64")}`;
}

const SECRET = fixedSecret("primary");
const PREVIOUS_SECRET = fixedSecret("previous");
const OTHER_SECRET = fixedSecret("unrelated");

function envelope(n: number, event: string, data: Record<string, unknown>): Record<string, unknown> {
  const id = `evt_01JGTV${String(n).padStart(20, "0")}`;
  return { id, event, created_at: "2026-01-01T00:00:00.000Z", user_id: "user_42", data };
}

interface Case {
  name: string;
  event: string;
  data: Record<string, unknown>;
  previous?: boolean;
  /** Seconds between signing and checking: receivers must accept anything within ±tolerance. */
  age?: number;
}

// The body's number rule is defined on JSON.stringify's spelling, which is also how this file is
// written, so json.load of this file then json.dumps(payload, sort_keys=True) reproduces `body` in
// Python for every number, 1e21 and up and -0 included.
const CASES: Case[] = [
  {
    name: "memory.created",
    event: "memory.created",
    data: {
      memory_id: "mem_01JGTV5Q3K8Z",
      content_preview: "Met Alice at the conference",
      concepts: ["alice", "conference"],
      importance: 0.8,
    },
  },
  { name: "memory.updated", event: "memory.updated", data: { memory_id: "mem_2", changes: ["content"] } },
  { name: "memory.deleted", event: "memory.deleted", data: { memory_id: "mem_3", soft: false } },
  {
    name: "concept.discovered with nested arrays",
    event: "concept.discovered",
    data: {
      concept: "graph theory",
      related: [
        ["euler", 1],
        ["königsberg", 2],
      ],
      confidence: 0.93,
    },
  },
  { name: "session.started", event: "session.started", data: { session_id: "ses_1", agent: "claude" } },
  { name: "session.ended", event: "session.ended", data: { session_id: "ses_1", duration_ms: 360000 } },
  {
    name: "sync.completed",
    event: "sync.completed",
    data: { sync_id: "syn_1", items_synced: 1250, duration_ms: 4321 },
  },
  {
    name: "sync.failed with quotes and backslashes",
    event: "sync.failed",
    data: { sync_id: "syn_2", error: 'path "C:\\Users\\me" not found', retryable: true },
  },
  { name: "user.created", event: "user.created", data: { email: "new@example.com", plan: "free" } },
  {
    name: "quota.warning",
    event: "quota.warning",
    data: { used: 850, limit: 1000, ratio: 0.85, resource: "memories" },
  },
  { name: "quota.exceeded", event: "quota.exceeded", data: { used: 1001, limit: 1000 } },
  {
    name: "non-ASCII text",
    event: "memory.created",
    data: { content_preview: "café — 記憶 — память — ذاكرة", tags: ["naïve", "Ångström"] },
  },
  {
    name: "emoji outside the BMP",
    event: "memory.created",
    data: { content_preview: "🧠 remembers 👩‍💻 and 𝄞", reaction: "😀" },
  },
  {
    name: "keys in code point order, not UTF-16 order",
    event: "concept.discovered",
    data: { "\u{1F600}": "astral", "\uFB01": "ligature", B: 1, _: 2, a: 3, é: 4, "": 5 },
  },
  {
    name: "control characters and DEL",
    event: "memory.created",
    data: { text: "line1\nline2\r\n\ttab \b\f \u0000 \u001f \u007f end" },
  },
  {
    name: "floats in Python notation",
    event: "quota.warning",
    data: {
      values: [0.1, 0.0001, 0.00001, 1.5e-7, 123456789.125, -2.5, 1e-300, 5e-324, 0.30000000000000004],
    },
  },
  {
    name: "large and negative integers",
    event: "sync.completed",
    data: { max_safe: 9007199254740991, min_safe: -9007199254740991, zero: 0, big: 1e20 },
  },
  {
    name: "empty containers, null and booleans",
    event: "user.created",
    data: { empty_object: {}, empty_array: [], nothing: null, yes: true, no: false },
  },
  {
    name: "deeply nested objects",
    event: "concept.discovered",
    data: { a: { b: { c: { d: { e: { f: [{ z: 1, y: [2, { x: "deep" }] }] } } } } } },
  },
  {
    name: "rotation: signed with the new and the previous secret",
    event: "memory.created",
    data: { memory_id: "mem_rot", content_preview: "rotating" },
    previous: true,
  },
  {
    name: "rotation with non-ASCII payload",
    event: "sync.completed",
    data: { note: "Grüße 🌍" },
    previous: true,
  },
  { name: "webhook.test", event: "webhook.test", data: { message: "This is a test delivery" } },
  {
    name: "timestamp exactly at the tolerance in the past",
    event: "memory.deleted",
    data: { memory_id: "mem_old" },
    age: TOLERANCE_SECONDS,
  },
  {
    name: "timestamp exactly at the tolerance in the future",
    event: "memory.deleted",
    data: { memory_id: "mem_new" },
    age: -TOLERANCE_SECONDS,
  },
  {
    name: "integral numbers from 1e21 up in Python float notation",
    event: "sync.completed",
    data: {
      below_1e21: 999999999999999900000,
      at_1e21: 1e21,
      negative: -1e22,
      huge: 1.5e300,
      largest: Number.MAX_VALUE,
      beyond_safe: 2 ** 60,
      negative_zero: -0,
      tiny: 1e-7,
      small: 0.0001,
    },
  },
];

export interface PositiveVector {
  name: string;
  secret: string;
  previous_secret?: string;
  timestamp: number;
  now: number;
  delivery_id: string;
  event: string;
  payload: unknown;
  body: string;
  x_continuum_signature: string;
  webhook_signature: string;
  headers: WebhookHeaders;
}

export interface NegativeVector {
  name: string;
  /** Which header family the request carries: "standard" (webhook-*) or "continuum" (X-Continuum-*). */
  family: "standard" | "continuum";
  secret: string;
  now: number;
  body: string;
  headers: Record<string, string>;
  reason: "missing_header" | "malformed" | "expired" | "bad_signature";
}

export interface TestVectors {
  description: string;
  version: 1;
  tolerance_seconds: number;
  positive: PositiveVector[];
  negative: NegativeVector[];
}

function positive(c: Case, n: number): PositiveVector {
  const timestamp = T0 + n * 60;
  const deliveryId = `dlv_01JGTV${String(n).padStart(20, "0")}`;
  const payload = envelope(n, c.event, c.data);
  const { body, headers } = signWebhook({
    secret: SECRET,
    secrets: c.previous ? [PREVIOUS_SECRET] : [],
    payload,
    deliveryId,
    timestamp,
    event: c.event,
  });
  return {
    name: c.name,
    secret: SECRET,
    ...(c.previous ? { previous_secret: PREVIOUS_SECRET } : {}),
    timestamp,
    now: timestamp + (c.age ?? 7),
    delivery_id: deliveryId,
    event: c.event,
    payload,
    body,
    x_continuum_signature: headers["X-Continuum-Signature"],
    webhook_signature: headers["webhook-signature"],
    headers,
  };
}

const COMMON = ["Content-Type", "User-Agent", "X-Continuum-Event", "X-Continuum-Delivery"] as const;
const FAMILY = {
  standard: ["webhook-id", "webhook-timestamp", "webhook-signature"],
  continuum: ["X-Continuum-Timestamp", "X-Continuum-Signature"],
} as const;

function negatives(base: PositiveVector, rotated: PositiveVector): NegativeVector[] {
  const out: NegativeVector[] = [];
  for (const family of ["standard", "continuum"] as const) {
    const pick = (v: PositiveVector): Record<string, string> =>
      Object.fromEntries([...COMMON, ...FAMILY[family]].map((h) => [h, v.headers[h]]));
    const ts = family === "standard" ? "webhook-timestamp" : "X-Continuum-Timestamp";
    const sig = family === "standard" ? "webhook-signature" : "X-Continuum-Signature";
    const add = (name: string, reason: NegativeVector["reason"], change: Partial<NegativeVector> = {}) =>
      out.push({
        name: `${family}: ${name}`,
        family,
        secret: SECRET,
        now: base.now,
        body: base.body,
        headers: pick(base),
        reason,
        ...change,
      });
    const without = (h: string) => Object.fromEntries(Object.entries(pick(base)).filter(([k]) => k !== h));

    add("tampered body", "bad_signature", { body: base.body.replace('"user_42"', '"user_43"') });
    add("whitespace added to body", "bad_signature", { body: `${base.body} ` });
    add("wrong secret", "bad_signature", { secret: OTHER_SECRET });
    add("timestamp replaced within the window", "bad_signature", {
      headers: { ...pick(base), [ts]: String(base.timestamp + 1) },
    });
    add("signed only with the previous secret, receiver has only the new one", "bad_signature", {
      secret: rotated.secret,
      headers: { ...pick(rotated), [sig]: rotated.headers[sig].split(" ")[1]! },
      body: rotated.body,
      now: rotated.now,
    });
    add("stale timestamp", "expired", { now: base.timestamp + TOLERANCE_SECONDS + 1 });
    add("timestamp too far in the future", "expired", { now: base.timestamp - TOLERANCE_SECONDS - 1 });
    add("missing signature header", "missing_header", { headers: without(sig) });
    add("missing timestamp header", "missing_header", { headers: without(ts) });
    add("timestamp is not unix seconds", "malformed", {
      headers: { ...pick(base), [ts]: "2026-01-01T00:00:00Z" },
    });
    add("signature header in the wrong shape", "malformed", {
      headers: { ...pick(base), [sig]: family === "standard" ? "not-a-signature" : "sha256=abc" },
    });
  }
  const standard = (h: Record<string, string>) =>
    Object.fromEntries([...COMMON, ...FAMILY.standard].map((k) => [k, h[k] ?? base.headers[k]]));
  out.push(
    {
      name: "standard: webhook-id replaced (replay under another id)",
      family: "standard",
      secret: SECRET,
      now: base.now,
      body: base.body,
      headers: standard({ "webhook-id": "dlv_01JGTV99999999999999999999" }),
      reason: "bad_signature",
    },
    {
      name: "standard: only an unsupported signature version",
      family: "standard",
      secret: SECRET,
      now: base.now,
      body: base.body,
      headers: standard({ "webhook-signature": base.webhook_signature.replace(/^v1,/, "v2,") }),
      reason: "bad_signature",
    },
    {
      name: "standard: missing webhook-id",
      family: "standard",
      secret: SECRET,
      now: base.now,
      body: base.body,
      headers: Object.fromEntries(Object.entries(standard({})).filter(([k]) => k !== "webhook-id")),
      reason: "missing_header",
    },
  );
  return out;
}

const DESCRIPTION = [
  "Signature test vectors for CONTINUUM webhooks, generated by scripts/gen-test-vectors.ts.",
  "`positive`: each must verify. `body` is the exact request body (UTF-8; always ASCII) and equals",
  "Python's json.dumps(payload, sort_keys=True). `headers` are the exact headers sent.",
  "x_continuum_signature = hex HMAC-SHA256 over '{timestamp}.{body}', keyed by the UTF-8 bytes of the",
  "whole secret string including 'whsec_'. webhook_signature = 'v1,' + base64 HMAC-SHA256 over",
  "'{delivery_id}.{timestamp}.{body}', keyed by the base64-decoded part of the secret after 'whsec_'.",
  "With previous_secret (rotation) each header carries one signature per secret, new first,",
  "space-separated; a verifier given only `secret` or only `previous_secret` must accept.",
  "`negative`: each must be rejected with `reason` (missing_header | malformed | expired | bad_signature),",
  "checked in that order; `family` names the header family the request carries.",
  "Verify at unix time `now` (not the wall clock) with a tolerance of tolerance_seconds in both",
  "directions; a timestamp exactly tolerance_seconds away is still accepted.",
].join(" ");

export function buildTestVectors(): TestVectors {
  const positives = CASES.map((c, i) => positive(c, i + 1));
  const base = positives[0]!;
  const rotated = positives.find((p) => p.previous_secret !== undefined)!;
  return {
    description: DESCRIPTION,
    version: 1,
    tolerance_seconds: TOLERANCE_SECONDS,
    positive: positives,
    negative: negatives(base, rotated),
  };
}

export function renderTestVectors(): string {
  return `${JSON.stringify(buildTestVectors(), null, 2)}\n`;
}

export const TEST_VECTORS_PATH = fileURLToPath(new URL("../docs/test-vectors.json", import.meta.url));

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(TEST_VECTORS_PATH, renderTestVectors());
  console.log(`wrote ${TEST_VECTORS_PATH}`);
}
