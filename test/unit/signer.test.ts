import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderTestVectors, TEST_VECTORS_PATH, type TestVectors } from "../../scripts/gen-test-vectors.js";
import {
  CanonicalJsonError,
  canonicalJson,
  generateSecret,
  InvalidSecretError,
  isValidSecret,
  maskSecret,
  signBody,
  signWebhook,
} from "../../src/signer.js";

describe("canonicalJson", () => {
  it.each<[string, unknown, string]>([
    [
      "sorted keys with Python separators",
      { b: 1, a: [1, 2], c: { z: null, y: true } },
      '{"a": [1, 2], "b": 1, "c": {"y": true, "z": null}}',
    ],
    ["empty containers", { o: {}, a: [] }, '{"a": [], "o": {}}'],
    ["booleans and null", [true, false, null], "[true, false, null]"],
    ["quote and backslash", 'say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'],
    ["short control escapes", "\n\r\t\b\f", '"\\n\\r\\t\\b\\f"'],
    ["other C0 controls in lowercase hex", "\u0000\u0001\u001f", '"\\u0000\\u0001\\u001f"'],
    ["DEL is escaped, as Python does", "\u007f", '"\\u007f"'],
    ["printable ASCII untouched", " ~/<>&'", '" ~/<>&\'"'],
    ["Latin-1 and BMP lowercase hex", "é\u00ff\uabcd\uffff", '"\\u00e9\\u00ff\\uabcd\\uffff"'],
    ["astral characters as surrogate pairs", "😀𝄞", '"\\ud83d\\ude00\\ud834\\udd1e"'],
    ["lone surrogates", "\ud800x\udfff", '"\\ud800x\\udfff"'],
    ["reversed surrogate pair", "\ude00\ud83d", '"\\ude00\\ud83d"'],
    [
      "integers",
      [0, 5, -17, 9007199254740991, -9007199254740991],
      "[0, 5, -17, 9007199254740991, -9007199254740991]",
    ],
    ["negative zero prints as 0", -0, "0"],
    ["1e20 without exponent", 1e20, "100000000000000000000"],
    ["the largest double below 1e21 as digits", 999999999999999900000, "999999999999999900000"],
    // Python's json.loads of JSON.stringify's "1152921504606847000" is that int, not 2**60.
    ["2**60 as JSON.stringify spells it", 2 ** 60, "1152921504606847000"],
    ["2**64 as JSON.stringify spells it", 2 ** 64, "18446744073709552000"],
    ["1e21 in Python's float notation", 1e21, "1e+21"],
    ["negative integral magnitudes from 1e21", [-1e21, -1e22, -1.5e21], "[-1e+21, -1e+22, -1.5e+21]"],
    ["1.5e+300", 1.5e300, "1.5e+300"],
    ["the largest double", Number.MAX_VALUE, "1.7976931348623157e+308"],
    ["the smallest double", -Number.MAX_VALUE, "-1.7976931348623157e+308"],
    ["2**70 in shortest digits", 2 ** 70, "1.1805916207174113e+21"],
    [
      "ordinary floats",
      [0.1, -2.5, 123456789.125, 0.30000000000000004],
      "[0.1, -2.5, 123456789.125, 0.30000000000000004]",
    ],
    [
      "exponent below 1e-4",
      [0.0001, 0.00001, 1.5e-7, -1e-7, 1.2345e-5],
      "[0.0001, 1e-05, 1.5e-07, -1e-07, 1.2345e-05]",
    ],
    ["three-digit exponents", [1e-300, 5e-324], "[1e-300, 5e-324]"],
    ["largest non-integral double", 4503599627370495.5, "4503599627370495.5"],
    ["just below the threshold", 0.00009999999999999999, "9.999999999999999e-05"],
    ["non-ASCII keys escaped", { é: 1 }, '{"\\u00e9": 1}'],
  ])("%s", (_name, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it("sorts keys by code point, not UTF-16 unit", () => {
    // UTF-16 puts U+1F600 (D83D DE00) before U+FB01; Python puts it after.
    expect(canonicalJson({ "\u{1F600}": 1, "\uFB01": 2, "\uE000": 3, a: 4 })).toBe(
      '{"a": 4, "\\ue000": 3, "\\ufb01": 2, "\\ud83d\\ude00": 1}',
    );
    expect(canonicalJson({ "x\u{10000}": 1, "x\uFFFF": 2, x: 3 })).toBe(
      '{"x": 3, "x\\uffff": 2, "x\\ud800\\udc00": 1}',
    );
  });

  it("sorts uppercase, underscore and lowercase by code point", () => {
    expect(canonicalJson({ b: 1, _: 2, B: 3, "": 4, aa: 5, a: 6 })).toBe(
      '{"": 4, "B": 3, "_": 2, "a": 6, "aa": 5, "b": 1}',
    );
  });

  it("uses toJSON like JSON.stringify", () => {
    expect(canonicalJson({ at: new Date(Date.UTC(2026, 0, 2)) })).toBe('{"at": "2026-01-02T00:00:00.000Z"}');
  });

  it("accepts null-prototype objects", () => {
    const o = Object.create(null) as Record<string, unknown>;
    o.k = "v";
    expect(canonicalJson(o)).toBe('{"k": "v"}');
  });

  it("allows the same object twice when it is not a cycle", () => {
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a": {"x": 1}, "b": [{"x": 1}]}');
  });

  it.each<[string, unknown, string]>([
    ["NaN", { a: [1, Number.NaN] }, "$.a[1]"],
    ["Infinity", { score: Number.POSITIVE_INFINITY }, "$.score"],
    ["-Infinity", [Number.NEGATIVE_INFINITY], "$[0]"],
    ["undefined property", { data: { gone: undefined } }, "$.data.gone"],
    ["undefined at the top", undefined, "$"],
    ["function", { f: () => 1 }, "$.f"],
    ["symbol", { "odd key": Symbol("s") }, '$["odd key"]'],
    ["BigInt", { n: 10n }, "$.n"],
    ["Map", { m: new Map([["a", 1]]) }, "$.m"],
    ["class instance", { c: new (class Point {})() }, "$.c"],
    ["sparse array hole", { a: new Array<number>(3).fill(1, 0, 1) }, "$.a[1]"],
  ])("refuses %s with the path", (_name, value, path) => {
    const error = (() => {
      try {
        canonicalJson(value);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(CanonicalJsonError);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as CanonicalJsonError).path).toBe(path);
    expect((error as CanonicalJsonError).message).toContain(path);
  });

  it("refuses cycles", () => {
    const a: Record<string, unknown> = { n: 1 };
    a.self = { back: a };
    expect(() => canonicalJson(a)).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(a)).toThrow(/circular.*\$\.self\.back/);
    const arr: unknown[] = [];
    arr.push(arr);
    expect(() => canonicalJson(arr)).toThrow(CanonicalJsonError);
  });

  it("accepts 1000 levels of nesting and refuses more (Python's own limit is just below)", () => {
    const nest = (levels: number): unknown => {
      let v: unknown = 0;
      for (let i = 0; i < levels; i++) v = i % 2 === 0 ? [v] : { k: v };
      return v;
    };
    expect(canonicalJson(nest(1000))).toMatch(/^\{"k": \[\{"k": /);
    expect(() => canonicalJson(nest(1001))).toThrow(/nesting deeper than 1000/);
  });

  it("parses back to the same value", () => {
    const value = {
      s: "é😀\n\u007f\ud800",
      n: [1e-7, 2 ** 60, 0.1, 1e21, Number.MAX_VALUE, -0.00001],
      o: { "\uFB01": [{}] },
    };
    expect(JSON.parse(canonicalJson(value))).toEqual(value);
  });
});

describe("secrets", () => {
  it("generates whsec_ + base64 of 32 random bytes", () => {
    const a = generateSecret();
    const b = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), "base64")).toHaveLength(32);
    expect(a).not.toBe(b);
    expect(isValidSecret(a)).toBe(true);
  });

  it.each([
    ["no prefix", "dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw="],
    ["not base64", "whsec_!!!!A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw="],
    ["url-safe alphabet", "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7a-_"],
    ["too short", `whsec_${Buffer.alloc(16).toString("base64")}`],
    ["too long", `whsec_${Buffer.alloc(65).toString("base64")}`],
    ["non-canonical padding", "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7ax="],
    ["empty", ""],
  ])("rejects a secret with %s", (_name, secret) => {
    expect(isValidSecret(secret)).toBe(false);
  });

  it("accepts 24 and 64 byte secrets", () => {
    expect(isValidSecret(`whsec_${Buffer.alloc(24, 1).toString("base64")}`)).toBe(true);
    expect(isValidSecret(`whsec_${Buffer.alloc(64, 1).toString("base64")}`)).toBe(true);
    expect(isValidSecret(42)).toBe(false);
  });

  it("masks all but a short prefix", () => {
    const secret = "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw=";
    expect(maskSecret(secret)).toBe("whsec_dC1A…");
    expect(maskSecret("whsec_short")).toBe("whsec_…");
    expect(maskSecret("plain-password-from-elsewhere")).toBe("…");
    const masked = maskSecret(generateSecret());
    expect(masked).toMatch(/^whsec_[A-Za-z0-9+/]{4}…$/);
  });
});

const SECRET = "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw=";
const OLD = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;

function hex(key: string, message: string) {
  return createHmac("sha256", key).update(message).digest("hex");
}
function b64(secret: string, message: string) {
  return createHmac("sha256", Buffer.from(secret.slice(6), "base64"))
    .update(message)
    .digest("base64");
}

describe("signWebhook", () => {
  const payload = { event: "memory.created", data: { b: "ü", a: 1 } };

  it("produces exactly the contract's headers", () => {
    const { body, headers } = signWebhook({
      secret: SECRET,
      payload,
      deliveryId: "dlv_1",
      timestamp: 1_700_000_000,
      event: "memory.created",
    });
    expect(body).toBe('{"data": {"a": 1, "b": "\\u00fc"}, "event": "memory.created"}');
    expect(headers).toEqual({
      "Content-Type": "application/json",
      "User-Agent": "CONTINUUM-Webhooks/1.0",
      "X-Continuum-Signature": hex(SECRET, `1700000000.${body}`),
      "X-Continuum-Timestamp": "1700000000",
      "X-Continuum-Event": "memory.created",
      "X-Continuum-Delivery": "dlv_1",
      "webhook-id": "dlv_1",
      "webhook-timestamp": "1700000000",
      "webhook-signature": `v1,${b64(SECRET, `dlv_1.1700000000.${body}`)}`,
    });
    expect(headers["X-Continuum-Signature"]).toMatch(/^[0-9a-f]{64}$/);
  });

  it("signs once per secret during a rotation, current secret first, duplicates dropped", () => {
    const { body, headers } = signWebhook({
      secret: SECRET,
      secrets: [OLD, SECRET],
      payload,
      deliveryId: "dlv_2",
      timestamp: 1_700_000_001,
      event: "memory.created",
    });
    const signed = `1700000001.${body}`;
    expect(headers["X-Continuum-Signature"]).toBe(`${hex(SECRET, signed)} ${hex(OLD, signed)}`);
    expect(headers["webhook-signature"]).toBe(
      `v1,${b64(SECRET, `dlv_2.${signed}`)} v1,${b64(OLD, `dlv_2.${signed}`)}`,
    );
  });

  it("signBody signs the given body verbatim with the given timestamp", () => {
    const body = '{"pre": "serialized"}';
    const a = signBody({ secret: SECRET, body, deliveryId: "dlv_3", timestamp: 10, event: "x" });
    const b = signBody({ secret: SECRET, body, deliveryId: "dlv_3", timestamp: 11, event: "x" });
    expect(a["X-Continuum-Signature"]).toBe(hex(SECRET, `10.${body}`));
    expect(b["X-Continuum-Signature"]).toBe(hex(SECRET, `11.${body}`));
    expect(b["webhook-signature"]).toBe(`v1,${b64(SECRET, `dlv_3.11.${body}`)}`);
  });

  it("refuses invalid secrets without echoing them, and non-integer timestamps", () => {
    const call =
      (secret: string, timestamp = 1) =>
      () =>
        signBody({ secret, body: "{}", deliveryId: "d", timestamp, event: "e" });
    expect(call("hunter2-not-a-secret")).toThrow(InvalidSecretError);
    expect(call("hunter2-not-a-secret")).not.toThrow(/hunter2/);
    expect(call(SECRET, 1.5)).toThrow(TypeError);
    expect(call(SECRET, -1)).toThrow(TypeError);
    expect(() =>
      signBody({
        secret: SECRET,
        secrets: ["whsec_bad"],
        body: "{}",
        deliveryId: "d",
        timestamp: 1,
        event: "e",
      }),
    ).toThrow(InvalidSecretError);
  });
});

describe("docs/test-vectors.json", () => {
  const committed = readFileSync(TEST_VECTORS_PATH, "utf8");
  const vectors = JSON.parse(committed) as TestVectors;

  it("is what scripts/gen-test-vectors.ts generates now", () => {
    expect(committed).toBe(renderTestVectors());
  });

  it("has enough vectors of every kind", () => {
    expect(vectors.positive.length).toBeGreaterThanOrEqual(20);
    expect(vectors.positive.some((v) => v.previous_secret !== undefined)).toBe(true);
    // Receivers in other languages must meet Python's float notation for integral magnitudes.
    expect(vectors.positive.some((v) => v.body.includes(": 1e+21, "))).toBe(true);
    const reasons = new Set(vectors.negative.map((v) => v.reason));
    expect([...reasons].sort()).toEqual(["bad_signature", "expired", "malformed", "missing_header"]);
  });

  it.each(vectors.positive.map((v) => [v.name, v] as const))(
    "%s: body and signatures recomputed independently",
    (_n, v) => {
      expect(v.body).toBe(canonicalJson(v.payload));
      expect(v.body).toMatch(/^[\x20-\x7e]*$/);
      const secrets = [v.secret, ...(v.previous_secret ? [v.previous_secret] : [])];
      const signed = `${v.timestamp}.${v.body}`;
      expect(v.x_continuum_signature).toBe(secrets.map((s) => hex(s, signed)).join(" "));
      expect(v.webhook_signature).toBe(
        secrets.map((s) => `v1,${b64(s, `${v.delivery_id}.${signed}`)}`).join(" "),
      );
      expect(v.headers["X-Continuum-Signature"]).toBe(v.x_continuum_signature);
      expect(v.headers["webhook-signature"]).toBe(v.webhook_signature);
      expect(v.headers["webhook-id"]).toBe(v.delivery_id);
      expect(v.headers["X-Continuum-Delivery"]).toBe(v.delivery_id);
      expect(v.headers["webhook-timestamp"]).toBe(String(v.timestamp));
      expect(v.headers["X-Continuum-Timestamp"]).toBe(String(v.timestamp));
      expect(Math.abs(v.now - v.timestamp)).toBeLessThanOrEqual(vectors.tolerance_seconds);
    },
  );
});
