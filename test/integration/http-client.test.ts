/**
 * The delivery client against real receivers on 127.0.0.1. Every resolver here is injected and
 * answers loopback addresses only; refused targets are proven refused by a receiver that sees no
 * TCP connection at all.
 */
import { createServer as createHttpsServer } from "node:https";
import { createServer } from "node:net";
import type { TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { createDeliveryClient, type DeliveryClient, type DnsResolve } from "../../src/http-client.js";
import { validateWebhookUrl } from "../../src/validator.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";

const LOCAL = ["127.0.0.1/32"];
const JSON_HEADERS = { "content-type": "application/json", "user-agent": "CONTINUUM-Webhooks/1.0" };

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const rx = await startReceiver(...args);
  cleanups.push(() => rx.close());
  return rx;
}

function client(opts: Partial<Parameters<typeof createDeliveryClient>[0]> = {}): DeliveryClient {
  const c = createDeliveryClient({
    timeoutMs: 2_000,
    // Never let a test reach real DNS.
    resolve: async (host) => {
      throw Object.assign(new Error(`no DNS in tests: ${host}`), { code: "ENOTFOUND" });
    },
    ...opts,
  });
  cleanups.push(() => c.close());
  return c;
}

// A self-signed P-256 certificate for "hooks.test", valid 2000-2099 (test fixture, not a secret).
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgL5tDpywvC3F2P9aW
QHPcNBotSSi2QF4tO9HPXKBTb7ChRANCAATU8ZUl62s/bz1Pm5zmbYtfwkvcmyV8
/aQToC6c9FCLoy0LXGWqQ9O9tlPRUE29rVJB71FETyaVlPk7n6bAW1YA
-----END PRIVATE KEY-----`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBYjCCAQegAwIBAgIBATAKBggqhkjOPQQDAjAVMRMwEQYDVQQDDApob29rcy50
ZXN0MCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMjM1OTU5WjAVMRMwEQYDVQQD
DApob29rcy50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1PGVJetrP289
T5uc5m2LX8JL3JslfP2kE6AunPRQi6MtC1xlqkPTvbZT0VBNva1SQe9RRE8mlZT5
O5+mwFtWAKNGMEQwFQYDVR0RBA4wDIIKaG9va3MudGVzdDAMBgNVHRMBAf8EAjAA
MB0GA1UdDgQWBBQ0KYxhneewhm2A2fV/P5dUnGOHdTAKBggqhkjOPQQDAgNJADBG
AiEA4+amnUnEapnfA3TlNSnyJK161LdvxlwRI+0RIsUJzyECIQD/2bdv4tUfIwWn
Y+7DFehD5T/5sCtQg6YXEhvNaMZZMA==
-----END CERTIFICATE-----`;

/** An HTTPS receiver on 127.0.0.1 that records the SNI name of each TLS connection. */
async function httpsReceiver(): Promise<{ port: number; sni: Array<string | false | null> }> {
  const sni: Array<string | false | null> = [];
  const server = createHttpsServer({ key: TLS_KEY, cert: TLS_CERT }, (_req, res) => res.end("secure"));
  server.on("secureConnection", (socket: TLSSocket) => sni.push(socket.servername));
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as { port: number }).port, sni };
}

/** A resolver that answers from a fixed table and counts questions. */
function resolver(table: Record<string, string[]>): DnsResolve & { calls: string[] } {
  const calls: string[] = [];
  const fn: DnsResolve = async (host) => {
    calls.push(host);
    const answer = table[host];
    if (!answer) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    return answer;
  };
  return Object.assign(fn, { calls });
}

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("SSRF guard at connect time", () => {
  it("refuses a name that was public at validation and is loopback at delivery (DNS rebinding)", async () => {
    const rx = await receiver();
    const validated = await validateWebhookUrl("https://rebind.example/hook", {
      environment: "production",
      resolve: async () => ["93.184.215.14"], // validator only: never dialled
    });
    expect(validated.ok).toBe(true);

    const c = client({ resolve: resolver({ "rebind.example": ["127.0.0.1"] }) });
    const result = await c.post(`http://rebind.example:${rx.port}/hook`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "refused_target" });
    expect(result.error).toMatch(/127\.0\.0\.1 is loopback/);
    expect(rx.connections).toBe(0);
    expect(rx.requests).toHaveLength(0);
  });

  it("reaches the same receiver once 127.0.0.1/32 is in allowTargets", async () => {
    const rx = await receiver();
    const c = client({ allowTargets: LOCAL, resolve: resolver({ "rebind.example": ["127.0.0.1"] }) });
    const result = await c.post(`http://rebind.example:${rx.port}/hook?x=1`, '{"a": 1}', JSON_HEADERS);
    expect(result).toMatchObject({ ok: true, status: 200, body: "ok" });
    expect(rx.requests).toHaveLength(1);
    expect(rx.requests[0]).toMatchObject({ method: "POST", path: "/hook?x=1", text: '{"a": 1}' });
    // The Host header keeps the name, not the dialled address.
    expect(rx.requests[0]?.headers.host).toBe(`rebind.example:${rx.port}`);
    expect(rx.requests[0]?.headers["user-agent"]).toBe("CONTINUUM-Webhooks/1.0");
  });

  it("refuses a literal 127.0.0.1 without allowTargets, before connecting", async () => {
    const rx = await receiver();
    const c = client();
    const result = await c.post(`${rx.url}/hook`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "refused_target" });
    expect(rx.connections).toBe(0);
  });

  it("refuses a mixed answer if any address is not allowed, dialling none", async () => {
    const rx = await receiver();
    const c = client({
      allowTargets: LOCAL,
      resolve: resolver({ "mixed.test": ["127.0.0.1", "127.0.0.2"] }),
    });
    const result = await c.post(`http://mixed.test:${rx.port}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "refused_target" });
    expect(result.error).toContain("127.0.0.2");
    expect(rx.connections).toBe(0);
  });

  it("refuses non-http schemes, userinfo, localhost and http in production without I/O", async () => {
    const rx = await receiver();
    const dns = resolver({});
    const dev = client({ allowTargets: LOCAL, resolve: dns });
    const prod = client({ allowTargets: LOCAL, resolve: dns, environment: "production" });
    for (const [c, url] of [
      [dev, `ftp://127.0.0.1:${rx.port}/`],
      [dev, `http://user:pw@127.0.0.1:${rx.port}/`],
      [dev, `http://localhost:${rx.port}/`],
      [dev, "not a url"],
      [prod, `${rx.url}/`],
    ] as const) {
      const result = await c.post(url, "{}", JSON_HEADERS);
      expect(result, url).toMatchObject({ ok: false, errorType: "refused_target" });
      expect(result.error).not.toContain("pw");
    }
    expect(rx.connections).toBe(0);
    expect(dns.calls).toEqual([]);
  });
});

describe("failures are classified, never thrown", () => {
  it("times out a hanging endpoint within the budget", async () => {
    const rx = await receiver({ reply: { hang: true } });
    const c = client({ allowTargets: LOCAL, timeoutMs: 300 });
    const result = await c.post(`${rx.url}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "timeout" });
    expect(result.status).toBeUndefined();
    expect(result.durationMs).toBeGreaterThanOrEqual(250);
    expect(result.durationMs).toBeLessThan(1_500);
    expect(rx.requests).toHaveLength(1);
  });

  it("times out a slow-drip body that keeps each chunk inside undici's own timeouts", async () => {
    const rx = await receiver({ reply: { drip: { chunk: "x", intervalMs: 40 } } });
    const c = client({ allowTargets: LOCAL, timeoutMs: 300 });
    const result = await c.post(`${rx.url}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, status: 200, errorType: "timeout" });
    expect(result.body).toMatch(/^x+$/);
    expect(result.durationMs).toBeLessThan(1_500);
  });

  it("stores only the first 64 KiB of a 1 MiB body and returns promptly", async () => {
    const rx = await receiver({ reply: { bodyBytes: 1024 * 1024 } });
    const c = client({ allowTargets: LOCAL, timeoutMs: 5_000 });
    const result = await c.post(`${rx.url}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: true, status: 200 });
    expect(result.body.length).toBe(65_536);
    expect(result.durationMs).toBeLessThan(2_000);
  });

  it("cuts a truncated body on a UTF-8 character boundary", async () => {
    const rx = await receiver({ reply: { body: "é".repeat(100) } }); // 2 bytes each
    const c = client({ allowTargets: LOCAL, maxResponseBytes: 11 });
    const result = await c.post(`${rx.url}/`, "{}", JSON_HEADERS);
    expect(result.body).toBe("é".repeat(5));
  });

  it("does not follow redirects", async () => {
    const second = await receiver();
    const first = await receiver({
      reply: { status: 302, headers: { location: `${second.url}/elsewhere` } },
    });
    const c = client({ allowTargets: LOCAL });
    const result = await c.post(`${first.url}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, status: 302, errorType: "http_status" });
    expect(result.headers?.location).toBe(`${second.url}/elsewhere`);
    expect(first.requests).toHaveLength(1);
    expect(second.connections).toBe(0);
  });

  it("reports non-2xx as http_status with Retry-After", async () => {
    const rx = await receiver({ reply: { status: 503, headers: { "retry-after": "7" }, body: "busy" } });
    const c = client({ allowTargets: LOCAL });
    const result = await c.post(`${rx.url}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, status: 503, errorType: "http_status", body: "busy" });
    expect(result.headers?.["retry-after"]).toBe("7");
  });

  it("classifies a connection reset", async () => {
    const rx = await receiver({ reply: { reset: true } });
    const c = client({ allowTargets: LOCAL });
    const result = await c.post(`${rx.url}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "connection" });
    expect(result.status).toBeUndefined();
    expect(rx.requests).toHaveLength(1);
  });

  it("classifies a refused connection", async () => {
    const port = await closedPort();
    const c = client({ allowTargets: LOCAL });
    const result = await c.post(`http://127.0.0.1:${port}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "connection" });
    expect(result.error).toContain("ECONNREFUSED");
  });

  it("classifies resolver failures and empty answers as dns", async () => {
    const c = client({ allowTargets: LOCAL, resolve: resolver({ "empty.test": [] }) });
    const failed = await c.post("http://nxdomain.test:8080/", "{}", JSON_HEADERS);
    expect(failed).toMatchObject({ ok: false, errorType: "dns" });
    expect(failed.error).toContain("ENOTFOUND");
    const empty = await c.post("http://empty.test:8080/", "{}", JSON_HEADERS);
    expect(empty).toMatchObject({ ok: false, errorType: "dns" });
  });

  it("never puts request headers or the URL's query in the error", async () => {
    const c = client({ resolve: resolver({ "rebind.example": ["127.0.0.1"] }) });
    const result = await c.post("http://rebind.example/p?token=s3cret", "{}", {
      "x-continuum-signature": "abc123",
    });
    expect(result.errorType).toBe("refused_target");
    expect(result.error).not.toMatch(/s3cret|abc123/);
  });
});

describe("TLS", () => {
  it("dials the vetted IP but verifies the certificate against the name (SNI kept)", async () => {
    const rx = await httpsReceiver();
    const c = client({
      allowTargets: LOCAL,
      ca: TLS_CERT,
      resolve: resolver({ "hooks.test": ["127.0.0.1"] }),
    });
    const result = await c.post(`https://hooks.test:${rx.port}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: true, status: 200, body: "secure" });
    expect(rx.sni).toEqual(["hooks.test"]);
  });

  it("classifies an untrusted certificate as tls", async () => {
    const rx = await httpsReceiver();
    const c = client({ allowTargets: LOCAL, resolve: resolver({ "hooks.test": ["127.0.0.1"] }) });
    const result = await c.post(`https://hooks.test:${rx.port}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "tls" });
  });

  it("classifies a certificate for another name as tls", async () => {
    const rx = await httpsReceiver();
    const c = client({
      allowTargets: LOCAL,
      ca: TLS_CERT,
      resolve: resolver({ "other.test": ["127.0.0.1"] }),
    });
    const result = await c.post(`https://other.test:${rx.port}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: false, errorType: "tls" });
    expect(result.error).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
  });
});

describe("transport", () => {
  it("ignores HTTP_PROXY and friends", async () => {
    const proxy = await receiver();
    const target = await receiver();
    const saved = { ...process.env };
    cleanups.push(() => {
      for (const k of ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    });
    for (const k of ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"]) process.env[k] = proxy.url;
    delete process.env.NO_PROXY;
    delete process.env.no_proxy;

    const c = client({ allowTargets: LOCAL });
    const result = await c.post(`${target.url}/direct`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: true, status: 200 });
    expect(target.requests).toHaveLength(1);
    expect(proxy.connections).toBe(0);
  });

  it("reuses keep-alive connections: 50 sequential posts, few sockets", async () => {
    const rx = await receiver();
    const c = client({ allowTargets: LOCAL });
    for (let i = 0; i < 50; i++) {
      const result = await c.post(`${rx.url}/n/${i}`, `{"i": ${i}}`, JSON_HEADERS);
      expect(result.ok).toBe(true);
    }
    expect(rx.requests).toHaveLength(50);
    expect(rx.connections).toBeLessThanOrEqual(2);
  });

  it("runs concurrent posts to one origin in parallel up to the pool size", async () => {
    const rx = await receiver({ reply: { delayMs: 100 } });
    const c = client({ allowTargets: LOCAL, connectionsPerOrigin: 4 });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => c.post(`${rx.url}/`, "{}", JSON_HEADERS)),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(rx.maxInFlight).toBe(4);
  });

  it("caches DNS answers for their TTL and re-checks them on each new connection", async () => {
    const rx = await receiver({ reply: { closeConnection: true } });
    let now = 1_000_000;
    let answer = "127.0.0.1";
    let calls = 0;
    const c = client({
      allowTargets: LOCAL,
      now: () => now,
      resolve: async () => {
        calls++;
        return [{ address: answer, ttl: 60 }];
      },
    });
    const url = `http://hooks.test:${rx.port}/`;
    expect((await c.post(url, "{}", JSON_HEADERS)).ok).toBe(true);
    expect((await c.post(url, "{}", JSON_HEADERS)).ok).toBe(true);
    expect(calls).toBe(1);
    expect(rx.connections).toBe(2);

    // After the TTL the name is asked again, and the new answer is checked before dialling.
    now += 61_000;
    answer = "127.0.0.3";
    const refused = await c.post(url, "{}", JSON_HEADERS);
    expect(calls).toBe(2);
    expect(refused).toMatchObject({ ok: false, errorType: "refused_target" });
    expect(rx.connections).toBe(2);
  });

  it("falls back to the next vetted address when one refuses the connection", async () => {
    const rx = await receiver(); // listens on 127.0.0.1 only, so 127.0.0.2 refuses
    const c = client({
      allowTargets: ["127.0.0.0/8"],
      resolve: resolver({ "multi.test": ["127.0.0.2", "127.0.0.1"] }),
    });
    const result = await c.post(`http://multi.test:${rx.port}/`, "{}", JSON_HEADERS);
    expect(result).toMatchObject({ ok: true, status: 200 });
    expect(rx.requests).toHaveLength(1);
  });

  it("does not cache answers without a TTL", async () => {
    const rx = await receiver({ reply: { closeConnection: true } });
    const dns = resolver({ "hooks.test": ["127.0.0.1"] });
    const c = client({ allowTargets: LOCAL, resolve: dns });
    await c.post(`http://hooks.test:${rx.port}/`, "{}", JSON_HEADERS);
    await c.post(`http://hooks.test:${rx.port}/`, "{}", JSON_HEADERS);
    expect(dns.calls).toEqual(["hooks.test", "hooks.test"]);
  });

  it("reports each response on kept-alive connections independently (receiver scripting)", async () => {
    const rx = await receiver();
    rx.enqueue({ status: 410, body: "gone" }, { status: 429, headers: { "retry-after": "3" } });
    rx.setReply((req) => ({ status: 201, body: `got ${req.text}` }));
    const c = client({ allowTargets: LOCAL });
    const results = [];
    for (const n of [1, 2, 3]) results.push(await c.post(`${rx.url}/`, `{"n": ${n}}`, JSON_HEADERS));
    await rx.waitForRequests(3);
    expect(results.map((r) => [r.status, r.ok, r.body])).toEqual([
      [410, false, "gone"],
      [429, false, "ok"],
      [201, true, 'got {"n": 3}'],
    ]);
    expect(results[1]?.headers?.["retry-after"]).toBe("3");
    // undici waits one event-loop turn before reusing a socket at pipelining 1, so back-to-back
    // requests alternate between two kept-alive sockets rather than sharing one.
    expect(new Set(rx.requests.map((r) => r.connectionId)).size).toBeLessThanOrEqual(2);
    rx.clear();
    expect(rx.requests).toHaveLength(0);
  });

  it("close() is idempotent", async () => {
    const c = client();
    const a = c.close();
    expect(c.close()).toBe(a);
    await a;
  });
});
