/**
 * The API over a real loopback socket: what `inject` cannot show (streaming bodies, connection
 * handling, the 503 while shutting down).
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { startApi, type TestApi } from "./helpers.js";

let rx: Receiver;
beforeAll(async () => {
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
});

async function listen(api: TestApi): Promise<string> {
  await api.app.listen({ host: "127.0.0.1", port: 0 });
  const address = api.app.server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return `http://127.0.0.1:${address.port}`;
}

/** Sends raw bytes on one connection and collects everything until the server closes it. */
function raw(base: string, write: (send: (s: string) => void) => Promise<void>): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(data));
    socket.on("connect", () => {
      write((s) => socket.write(s)).catch(reject);
    });
  });
}

describe("over a real socket", () => {
  let api: TestApi;
  let base: string;
  beforeAll(async () => {
    api = await startApi({ workers: true });
    base = await listen(api);
  });
  afterAll(async () => {
    await api.cleanup();
  });

  it("creates a webhook, emits, and the worker delivers", async () => {
    const auth = { authorization: `Bearer ${api.keys.alice}`, "content-type": "application/json" };
    const created = await fetch(`${base}/api/v1/webhooks`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ url: `${rx.url}/socket`, events: ["memory.created"] }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toMatch(/^\/api\/v1\/webhooks\/whk_/);
    rx.clear();
    const emitted = await fetch(`${base}/api/v1/events`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ event: "memory.created", data: { memory_id: "m" } }),
    });
    expect(emitted.status).toBe(202);
    const { id } = (await emitted.json()) as { id: string };
    await rx.waitForRequests(1);
    expect(JSON.parse(rx.requests[0]!.text)).toMatchObject({ id, event: "memory.created", user_id: "alice" });
  });

  it("stops reading a chunked body past 1 MiB with 413 problem+json", async () => {
    const chunk = "x".repeat(64 * 1024);
    const response = await raw(base, async (send) => {
      send(
        `POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.keys.alice}\r\n` +
          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
      );
      send(`${(1).toString(16)}\r\n{\r\n`);
      for (let i = 0; i < 20; i++) send(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      send("0\r\n\r\n");
    });
    expect(response).toMatch(/^HTTP\/1\.1 413 /);
    expect(response).toMatch(/content-type: application\/problem\+json/i);
    expect((await api.counts()).events).toBe(1);
  });

  it("refuses a Content-Length that disagrees with the body", async () => {
    const response = await raw(base, async (send) => {
      send(
        `POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.keys.alice}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{"event":"memory.created","data":{}}',
      );
    });
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(response).toMatch(/application\/problem\+json/);
  });

  it("answers headers over Node's limit with 431 problem+json", async () => {
    const response = await raw(base, async (send) => {
      send(`GET /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nX-Big: ${"y".repeat(20_000)}\r\n\r\n`);
    });
    expect(response).toMatch(/^HTTP\/1\.1 431 /);
    expect(response).toContain("https://continuum-webhooks.dev/problems/headers_too_large");
  });

  it("serves /health, /metrics, /openapi.json and /docs", async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect(await (await fetch(`${base}/metrics`)).text()).toContain("webhook_queue_depth");
    expect(((await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string }).openapi).toBe(
      "3.1.0",
    );
    const docs = await fetch(`${base}/docs`);
    expect(docs.headers.get("content-type")).toMatch(/^text\/html/);
  });
});

describe("while shutting down", () => {
  it("answers a request that arrives during close with 503 problem+json and Connection: close", async () => {
    let release: () => void = () => {};
    let entered: () => void = () => {};
    const inSlow = new Promise<void>((r) => {
      entered = r;
    });
    const api = await startApi({
      beforeReady: (app) =>
        app.get("/slow", async () => {
          entered();
          await new Promise<void>((r) => {
            release = r;
          });
          return { ok: true };
        }),
    });
    const base = await listen(api);
    let closed: Promise<void> | undefined;
    try {
      const response = await raw(base, async (send) => {
        send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        await inSlow;
        closed = api.app.close();
        // close() runs its preClose hooks asynchronously; give them a turn.
        await new Promise((r) => setTimeout(r, 50));
        send(`GET /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${api.keys.alice}\r\n\r\n`);
        await new Promise((r) => setTimeout(r, 50));
        release();
      });
      const [first, second] = response.split(/(?=HTTP\/1\.1 )/);
      expect(first).toMatch(/^HTTP\/1\.1 200 /);
      expect(second).toMatch(/^HTTP\/1\.1 503 /);
      expect(second).toMatch(/content-type: application\/problem\+json/i);
      expect(second).toMatch(/connection: close/i);
      expect(second).toMatch(/retry-after: 1/i);
      expect(second).toContain("https://continuum-webhooks.dev/problems/unavailable");
      await closed;
    } finally {
      release();
      await closed;
      await api.te.cleanup();
    }
  });
});
