/**
 * The official Standard Webhooks and Svix verifiers must accept our deliveries unchanged (§4).
 * Both read the wall clock, so every delivery here is signed "now". (Their error class cannot be
 * matched with instanceof: it resets its own prototype, so failures are matched by message.)
 */

import { readFileSync } from "node:fs";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { describe, expect, it } from "vitest";
import { TEST_VECTORS_PATH, type TestVectors } from "../../scripts/gen-test-vectors.js";
import { generateSecret, type SignedWebhook, signWebhook } from "../../src/signer.js";

const PAYLOADS: unknown[] = [
  { id: "evt_1", event: "memory.created", user_id: "u", data: { memory_id: "m", importance: 0.5 } },
  { text: "café 記憶 🧠 👩‍💻", "\u{1F600}": 1, "\uFB01": 2 },
  { controls: "\n\r\t\b\f\u0000\u007f", quote: '"\\' },
  { floats: [1e-7, 1.5e-5, 123456789.125, -0.1], ints: [2 ** 53, 1e21, -0] },
  { deep: { a: [{ b: [{ c: {} }] }, []] }, nothing: null, flags: [true, false] },
  [],
  "a bare string",
  42,
  // And every payload of the shared test vectors.
  ...(JSON.parse(readFileSync(TEST_VECTORS_PATH, "utf8")) as TestVectors).positive.map((v) => v.payload),
];

const nowSeconds = () => Math.floor(Date.now() / 1000);

function deliver(payload: unknown, secret: string, previous?: string, n = 0): SignedWebhook {
  return signWebhook({
    secret,
    secrets: previous === undefined ? [] : [previous],
    payload,
    deliveryId: `dlv_01JGTV${String(n).padStart(20, "0")}`,
    timestamp: nowSeconds(),
    event: "memory.created",
  });
}

/** Each verifier gets the body both as a string and as the Buffer a server would hand it. */
function verifiers(secret: string) {
  const standard = new StandardWebhook(secret);
  const svix = new SvixWebhook(secret);
  return [
    ["standardwebhooks", (body: string | Buffer, h: Record<string, string>) => standard.verify(body, h)],
    ["svix", (body: string | Buffer, h: Record<string, string>) => svix.verify(body, h)],
  ] as const;
}

describe("standardwebhooks and svix accept our webhook-* headers", () => {
  it.each(PAYLOADS.map((p, i) => [i, p] as const))("payload %i", (i, payload) => {
    const secret = generateSecret();
    const { body, headers } = deliver(payload, secret, undefined, i);
    for (const [name, verify] of verifiers(secret)) {
      expect(verify(body, headers), name).toEqual(JSON.parse(body));
      expect(verify(Buffer.from(body), headers), name).toEqual(JSON.parse(body));
    }
  });

  it("accepts a delivery with only the Standard Webhooks headers, and svix-* names too", () => {
    const secret = generateSecret();
    const { body, headers } = deliver(PAYLOADS[0], secret);
    const minimal = {
      "webhook-id": headers["webhook-id"],
      "webhook-timestamp": headers["webhook-timestamp"],
      "webhook-signature": headers["webhook-signature"],
    };
    const [[, standard], [, svix]] = verifiers(secret);
    expect(standard(body, minimal)).toEqual(PAYLOADS[0]);
    expect(
      svix(body, {
        "svix-id": minimal["webhook-id"],
        "svix-timestamp": minimal["webhook-timestamp"],
        "svix-signature": minimal["webhook-signature"],
      }),
    ).toEqual(PAYLOADS[0]);
  });

  it("during a rotation, a verifier holding only the old or only the new secret accepts", () => {
    for (const [i, payload] of PAYLOADS.entries()) {
      const current = generateSecret();
      const previous = generateSecret();
      const { body, headers } = deliver(payload, current, previous, i);
      expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
      for (const secret of [current, previous]) {
        for (const [name, verify] of verifiers(secret)) {
          expect(verify(body, headers), `${name} ${i}`).toEqual(JSON.parse(body));
        }
      }
    }
  });

  it("the same verifiers reject a tampered body and an unrelated secret", () => {
    const secret = generateSecret();
    const { body, headers } = deliver(PAYLOADS[0], secret);
    for (const [, verify] of verifiers(secret)) {
      expect(() => verify(body.replace("0.5", "0.6"), headers)).toThrow("No matching signature found");
    }
    for (const [, verify] of verifiers(generateSecret())) {
      expect(() => verify(body, headers)).toThrow("No matching signature found");
    }
  });
});
