/**
 * Tests for verify_webhook.js: `node --test examples/verify_webhook.test.js`.
 *
 * Every positive vector of docs/test-vectors.json must verify (either secret of a rotation, each
 * header family alone and both together); every negative one must be refused with its reason.
 * Then the Express middleware over a real loopback server, the Next.js route handler with a Web
 * `Request`, and the queue hand-off. The last line printed counts the vectors checked.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import express from "express";
import {
  Deduplicator,
  deliveryIdOf,
  expressWebhook,
  InProcessQueue,
  nextRouteHandler,
  queueHandOff,
  verifyWebhook,
  WebhookVerificationError,
} from "./verify_webhook.js";

const vectors = JSON.parse(readFileSync(new URL("../docs/test-vectors.json", import.meta.url), "utf8"));
const STANDARD = ["webhook-id", "webhook-timestamp", "webhook-signature"];
const CONTINUUM = ["x-continuum-timestamp", "x-continuum-signature"];
const without = (headers, names) =>
  Object.fromEntries(Object.entries(headers).filter(([k]) => !names.includes(k.toLowerCase())));
const secretsOf = (v) => [v.secret, ...(v.previous_secret ? [v.previous_secret] : [])];
const OTHER_SECRET = `whsec_${"A".repeat(43)}=`;

function reasonOf(f) {
  try {
    f();
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error.reason;
    throw error;
  }
  return "accepted";
}

const counts = { positive: 0, negative: 0 };
after(() => {
  console.log(
    `continuum test vectors [javascript]: ${counts.positive} positive accepted, ${counts.negative} negative rejected`,
  );
});

describe("verifyWebhook and docs/test-vectors.json", () => {
  for (const v of vectors.positive) {
    it(`accepts: ${v.name}`, () => {
      for (const secret of secretsOf(v)) {
        for (const headers of [without(v.headers, STANDARD), without(v.headers, CONTINUUM), v.headers]) {
          assert.deepEqual(verifyWebhook({ body: v.body, headers, secret, now: v.now }), v.payload);
        }
      }
      // Raw bytes, a Web Headers object, and a receiver-side list of secrets.
      const fromBytes = verifyWebhook({
        body: new TextEncoder().encode(v.body),
        headers: new Headers(v.headers),
        secret: [OTHER_SECRET, v.secret],
        now: v.now,
      });
      assert.deepEqual(fromBytes, v.payload);
      counts.positive++;
    });
  }

  for (const v of vectors.negative) {
    it(`rejects (${v.reason}): ${v.name}`, () => {
      assert.equal(
        reasonOf(() => verifyWebhook({ body: v.body, headers: v.headers, secret: v.secret, now: v.now })),
        v.reason,
      );
      counts.negative++;
    });
  }

  it("refuses to run without a secret, or with one that yields an empty key", () => {
    const v = vectors.positive[0];
    assert.throws(
      () => verifyWebhook({ body: v.body, headers: v.headers, secret: [], now: v.now }),
      TypeError,
    );
    assert.throws(
      () => verifyWebhook({ body: v.body, headers: v.headers, secret: "whsec_", now: v.now }),
      TypeError,
    );
  });

  it("counts the signatures of a header sent twice", () => {
    const v = vectors.positive[0];
    const headers = { ...v.headers, "webhook-signature": ["v1,AAAA", v.headers["webhook-signature"]] };
    assert.deepEqual(verifyWebhook({ body: v.body, headers, secret: v.secret, now: v.now }), v.payload);
  });

  it("takes the delivery id from the signed webhook-id first", () => {
    assert.equal(deliveryIdOf({ "Webhook-Id": "a", "X-Continuum-Delivery": "b" }), "a");
    assert.equal(deliveryIdOf(new Headers({ "X-Continuum-Delivery": "b" })), "b");
    assert.equal(deliveryIdOf({}), undefined);
  });
});

describe("Deduplicator", () => {
  it("claims an id once within its TTL, again after it", () => {
    const d = new Deduplicator({ ttlSeconds: 10 });
    assert.equal(d.claim("dlv_1", 0), true);
    assert.equal(d.claim("dlv_1", 9_999), false);
    assert.equal(d.claim("dlv_1", 10_000), true);
  });

  it("forgets a released id and, when full, the oldest", () => {
    const d = new Deduplicator({ maxEntries: 2 });
    assert.equal(d.claim("a"), true);
    d.release("a");
    assert.equal(d.claim("a"), true);
    assert.equal(d.claim("b"), true);
    assert.equal(d.claim("c"), true);
    assert.equal(d.claim("c"), false);
    assert.equal(d.claim("a"), true); // dropped to make room for c
  });
});

describe("Express middleware over a real loopback server", () => {
  let base;
  let server;
  let clock = 0;
  const received = [];
  let failNext = false;

  before(async () => {
    const app = express();
    app.post(
      "/webhooks/continuum",
      express.raw({ type: "application/json" }),
      expressWebhook({
        secret: vectors.positive[0].secret,
        now: () => clock,
        onEvent: async (event, deliveryId) => {
          if (failNext) {
            failNext = false;
            throw new Error("handler failed");
          }
          received.push({ event, deliveryId });
        },
      }),
    );
    // Keep the failing-handler test quiet: answer 500 without Express's stack trace on stderr.
    app.use((_error, _req, res, _next) => res.status(500).json({ error: "handler_failed" }));
    await new Promise((resolve) => {
      server = app.listen(0, "127.0.0.1", resolve);
    });
    base = `http://127.0.0.1:${server.address().port}/webhooks/continuum`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  const post = async (v, headers = v.headers) => {
    clock = v.now;
    const response = await fetch(base, { method: "POST", body: v.body, headers });
    return { status: response.status, body: await response.json() };
  };

  it("accepts every positive vector once, and answers 'duplicate' to a retry", async () => {
    for (const v of vectors.positive.filter((p) => p.secret === vectors.positive[0].secret)) {
      assert.deepEqual(await post(v), { status: 200, body: { status: "ok", delivery_id: v.delivery_id } });
      assert.deepEqual(received.at(-1), { event: v.payload, deliveryId: v.delivery_id });
    }
    const count = received.length;
    const retry = await post(vectors.positive[0], without(vectors.positive[0].headers, STANDARD));
    assert.deepEqual(retry.body.status, "duplicate");
    assert.equal(received.length, count);
  });

  it("answers 400 with the reason to every negative vector signed for its secret", async () => {
    for (const v of vectors.negative.filter((n) => n.secret === vectors.positive[0].secret)) {
      const { status, body } = await post(v);
      assert.deepEqual([status, body.reason], [400, v.reason], v.name);
    }
  });

  it("answers 500 when the handler fails, and processes the retry", async () => {
    const v = vectors.positive.at(-1);
    // X-Continuum-Delivery is not signed: a fresh id, so the delivery is not a duplicate.
    const headers = { ...without(v.headers, STANDARD), "X-Continuum-Delivery": "dlv_retry_after_500" };
    failNext = true;
    assert.equal((await post(v, headers)).status, 500);
    assert.equal((await post(v, headers)).body.status, "ok");
    assert.equal(received.at(-1).deliveryId, "dlv_retry_after_500");
  });

  it("fails loudly when express.raw() is missing", async () => {
    const app = express();
    app.post("/hook", express.json(), expressWebhook({ secret: OTHER_SECRET, onEvent: () => {} }));
    let message = "";
    app.use((error, _req, res, _next) => {
      message = error.message;
      res.status(500).end();
    });
    const s = await new Promise((resolve) => {
      const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
    });
    const v = vectors.positive[0];
    const response = await fetch(`http://127.0.0.1:${s.address().port}/hook`, {
      method: "POST",
      body: v.body,
      headers: v.headers,
    });
    await new Promise((resolve) => s.close(resolve));
    assert.equal(response.status, 500);
    assert.match(message, /express\.raw/);
  });
});

describe("Next.js route handler with a Web Request", () => {
  it("verifies every positive vector and refuses every negative one", async () => {
    let clock = 0;
    const seen = [];
    for (const v of [...vectors.positive, ...vectors.negative]) {
      clock = v.now;
      const POST = nextRouteHandler({
        secret: v.secret,
        now: () => clock,
        onEvent: (event, deliveryId) => seen.push([event, deliveryId]),
      });
      const request = new Request("https://receiver.example/api/webhooks/continuum", {
        method: "POST",
        headers: v.headers,
        body: v.body,
      });
      const response = await POST(request);
      const body = await response.json();
      if (v.reason) assert.deepEqual([response.status, body.reason], [400, v.reason], v.name);
      else {
        assert.deepEqual([response.status, body.status], [200, "ok"], v.name);
        assert.deepEqual(seen.at(-1), [v.payload, v.delivery_id]);
      }
    }
    assert.equal(seen.length, vectors.positive.length);
  });

  it("answers 500 when the handler throws", async () => {
    const v = vectors.positive[0];
    const POST = nextRouteHandler({
      secret: v.secret,
      now: () => v.now,
      onEvent: () => {
        throw new Error("boom");
      },
    });
    const originalError = console.error;
    console.error = () => {};
    try {
      const response = await POST(
        new Request("https://r.example/", { method: "POST", headers: v.headers, body: v.body }),
      );
      assert.equal(response.status, 500);
    } finally {
      console.error = originalError;
    }
  });
});

describe("queue hand-off", () => {
  it("answers 200 before the work is done, and the worker gets each delivery once", async () => {
    const done = [];
    let release;
    const gate = new Promise((resolve) => {
      release = resolve;
    });
    const queue = new InProcessQueue(async (job) => {
      await gate; // the "slow work": blocked until the responses are in
      done.push(job.deliveryId);
    });
    const v = vectors.positive[0];
    const app = express();
    app.post(
      "/webhooks/continuum",
      express.raw({ type: "application/json" }),
      queueHandOff({ secret: v.secret, queue, now: () => v.now }),
    );
    const server = await new Promise((resolve) => {
      const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
    });
    try {
      const url = `http://127.0.0.1:${server.address().port}/webhooks/continuum`;
      const first = await fetch(url, { method: "POST", headers: v.headers, body: v.body });
      const retry = await fetch(url, { method: "POST", headers: v.headers, body: v.body });
      assert.deepEqual([first.status, (await first.json()).status], [200, "ok"]);
      assert.deepEqual([retry.status, (await retry.json()).status], [200, "duplicate"]);
      assert.deepEqual(done, []); // answered while the job still waits
      release();
      await queue.idle();
      assert.deepEqual(done, [v.delivery_id]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
