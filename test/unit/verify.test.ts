import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TEST_VECTORS_PATH, type TestVectors } from "../../scripts/gen-test-vectors.js";
import { generateSecret, signBody, signWebhook } from "../../src/signer.js";
import { type HeaderSource, verifyWebhook, WebhookVerificationError } from "../../src/verify.js";

const vectors = JSON.parse(readFileSync(TEST_VECTORS_PATH, "utf8")) as TestVectors;

function reasonOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof WebhookVerificationError) return e.reason;
    throw e;
  }
  return "accepted";
}

const STANDARD = ["webhook-id", "webhook-timestamp", "webhook-signature"];
const CONTINUUM = ["x-continuum-timestamp", "x-continuum-signature"];
function only(headers: Record<string, string>, drop: string[]) {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !drop.includes(k.toLowerCase())));
}

describe("verifyWebhook against docs/test-vectors.json", () => {
  it.each(vectors.positive.map((v) => [v.name, v] as const))("accepts %s", (_n, v) => {
    const secrets = [v.secret, ...(v.previous_secret ? [v.previous_secret] : [])];
    for (const secret of secrets) {
      // Each family on its own, then both together.
      for (const headers of [only(v.headers, CONTINUUM), only(v.headers, STANDARD), v.headers]) {
        expect(verifyWebhook({ body: v.body, headers, secret, now: v.now })).toEqual(v.payload);
      }
    }
    expect(
      verifyWebhook({ body: Buffer.from(v.body), headers: v.headers, secret: v.secret, now: v.now }),
    ).toEqual(v.payload);
  });

  it.each(vectors.negative.map((v) => [v.name, v] as const))("rejects %s", (_n, v) => {
    expect(
      reasonOf(() => verifyWebhook({ body: v.body, headers: v.headers, secret: v.secret, now: v.now })),
    ).toBe(v.reason);
  });
});

describe("continuum-webhooks/verify", () => {
  it("imports nothing but node:crypto, so receivers do not pull in the service", () => {
    const source = readFileSync(new URL("../../src/verify.ts", import.meta.url), "utf8");
    const imports = [...source.matchAll(/^\s*(?:import|export)[^;]*?from\s+["']([^"']+)["']/gm)].map(
      (m) => m[1],
    );
    expect(imports).toEqual(["node:crypto"]);
    expect(source).not.toMatch(/\bimport\s*\(|\brequire\s*\(/);
  });
});

describe("verifyWebhook", () => {
  const secret = generateSecret();
  const now = 1_800_000_000;
  const payload = { id: "evt_1", event: "memory.created", data: { text: "héllo 🌍" } };
  const signed = signWebhook({
    secret,
    payload,
    deliveryId: "dlv_1",
    timestamp: now,
    event: "memory.created",
  });

  it("reads a fetch Headers object", () => {
    const headers = new Headers(signed.headers);
    expect(verifyWebhook({ body: signed.body, headers, secret, now })).toEqual(payload);
  });

  it("reads plain objects in any case, including Node's array values", () => {
    const lower = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), v]));
    const upper = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhook({ body: signed.body, headers: lower, secret, now })).toEqual(payload);
    expect(verifyWebhook({ body: signed.body, headers: upper, secret, now })).toEqual(payload);
    const arrays: HeaderSource = {
      ...lower,
      "webhook-signature": ["v1,AAAA", signed.headers["webhook-signature"]],
    };
    expect(verifyWebhook({ body: signed.body, headers: arrays, secret, now })).toEqual(payload);
  });

  it("accepts the raw bytes as a Uint8Array view into a larger buffer", () => {
    const bytes = Buffer.from(`xx${signed.body}yy`);
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset + 2, bytes.length - 4);
    expect(verifyWebhook({ body: view, headers: signed.headers, secret, now })).toEqual(payload);
  });

  it("tries every secret of an array (receiver-side rotation)", () => {
    const other = generateSecret();
    expect(
      verifyWebhook({ body: signed.body, headers: signed.headers, secret: [other, secret], now }),
    ).toEqual(payload);
    expect(
      reasonOf(() => verifyWebhook({ body: signed.body, headers: signed.headers, secret: [other], now })),
    ).toBe("bad_signature");
  });

  it("accepts any of several signatures, for either secret of a sender-side rotation", () => {
    const old = generateSecret();
    const rotated = signWebhook({
      secret,
      secrets: [old],
      payload,
      deliveryId: "d",
      timestamp: now,
      event: "e",
    });
    for (const s of [secret, old]) {
      for (const drop of [STANDARD, CONTINUUM]) {
        const headers = only({ ...rotated.headers }, drop);
        expect(verifyWebhook({ body: rotated.body, headers, secret: s, now })).toEqual(payload);
      }
    }
  });

  it("enforces the tolerance in both directions, inclusive at the edge", () => {
    const at = (n: number, toleranceSeconds?: number) =>
      reasonOf(() =>
        verifyWebhook({ body: signed.body, headers: signed.headers, secret, now: n, toleranceSeconds }),
      );
    expect(at(now + 300)).toBe("accepted");
    expect(at(now - 300)).toBe("accepted");
    expect(at(now + 301)).toBe("expired");
    expect(at(now - 301)).toBe("expired");
    expect(at(now + 30, 10)).toBe("expired");
    expect(at(now + 3600, 3600)).toBe("accepted");
  });

  it("uses the wall clock by default", () => {
    const fresh = signWebhook({
      secret,
      payload,
      deliveryId: "d",
      timestamp: Math.floor(Date.now() / 1000),
      event: "e",
    });
    expect(verifyWebhook({ body: fresh.body, headers: fresh.headers, secret })).toEqual(payload);
    expect(reasonOf(() => verifyWebhook({ body: signed.body, headers: signed.headers, secret }))).toBe(
      "expired",
    );
  });

  it("prefers the Standard Webhooks family when both are present", () => {
    const headers = { ...signed.headers, "webhook-signature": "v1,bm9wZQ==" };
    expect(reasonOf(() => verifyWebhook({ body: signed.body, headers, secret, now }))).toBe("bad_signature");
  });

  it("compares hex signatures case-insensitively", () => {
    const headers = only(
      { ...signed.headers, "X-Continuum-Signature": signed.headers["X-Continuum-Signature"].toUpperCase() },
      STANDARD,
    );
    expect(verifyWebhook({ body: signed.body, headers, secret, now })).toEqual(payload);
  });

  it("rejects a validly signed body that is not JSON as malformed", () => {
    const body = "not json";
    const headers = signBody({ secret, body, deliveryId: "d", timestamp: now, event: "e" });
    expect(reasonOf(() => verifyWebhook({ body, headers, secret, now }))).toBe("malformed");
    expect(reasonOf(() => verifyWebhook({ body: `${body}!`, headers, secret, now }))).toBe("bad_signature");
  });

  it.each<[string, string, string, string]>([
    ["whitespace-only webhook-signature", "webhook-signature", "   ", "malformed"],
    ["an empty v1 signature", "webhook-signature", "v1,", "malformed"],
    ["a version without a signature", "webhook-signature", ",abc", "malformed"],
    ["v1 with a wrong base64 value", "webhook-signature", "v1,AAAA", "bad_signature"],
    ["a negative timestamp", "webhook-timestamp", "-5", "malformed"],
    ["a fractional timestamp", "webhook-timestamp", "1800000000.5", "malformed"],
  ])("standard family: %s", (_name, header, value, reason) => {
    const headers = { ...signed.headers, [header]: value };
    expect(reasonOf(() => verifyWebhook({ body: signed.body, headers, secret, now }))).toBe(reason);
  });

  it.each<[string, string, string]>([
    ["a short hex value", "abcdef", "malformed"],
    ["a GitHub-style prefix", `sha256=${"a".repeat(64)}`, "malformed"],
    ["a well-formed wrong value", "a".repeat(64), "bad_signature"],
  ])("continuum family: %s", (_name, value, reason) => {
    const headers = only({ ...signed.headers, "X-Continuum-Signature": value }, STANDARD);
    expect(reasonOf(() => verifyWebhook({ body: signed.body, headers, secret, now }))).toBe(reason);
  });

  it("accepts a signature header that a proxy duplicated and fetch joined with a comma", () => {
    const headers = new Headers(signed.headers);
    headers.append("webhook-signature", "v1,bm9wZQ==");
    expect(headers.get("webhook-signature")).toContain(", ");
    expect(verifyWebhook({ body: signed.body, headers, secret, now })).toEqual(payload);
  });

  it("reports the reason and a message that never contains the secret", () => {
    try {
      verifyWebhook({ body: "{}", headers: {}, secret, now });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(WebhookVerificationError);
      expect((e as WebhookVerificationError).reason).toBe("missing_header");
      expect((e as Error).message).not.toContain(secret);
    }
  });

  it("throws TypeError when given no secret", () => {
    expect(() => verifyWebhook({ body: signed.body, headers: signed.headers, secret: [], now })).toThrow(
      TypeError,
    );
    expect(() => verifyWebhook({ body: signed.body, headers: signed.headers, secret: "", now })).toThrow(
      TypeError,
    );
  });
});
