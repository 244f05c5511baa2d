/**
 * The one HTTP client deliveries go through (CONTRACT §4, §5).
 *
 * One undici Agent for the process: keep-alive pools per origin, no fetch (several times slower),
 * no proxy (Agent never reads HTTP_PROXY & co), no redirects (the plain dispatcher has no redirect
 * handler, so a 3xx comes back as a response).
 *
 * The SSRF guard sits in the Agent's `connect` hook. undici calls it only when a pool needs a new
 * socket, with the hostname from the URL; we resolve the name ourselves (through a TTL-honouring
 * cache), check EVERY answer with the same `checkTarget` rule the validator uses, and only then
 * hand undici's own connector the vetted IP literal to dial (the original name still drives TLS
 * SNI and certificate checks via `host`). An IP literal skips resolution but not the check. So a
 * name that was public at registration and points at 127.0.0.1 now is refused before any SYN.
 */
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { type ConnectionOptions, rootCertificates } from "node:tls";
import { Agent, buildConnector } from "undici";
import { type Cidr, checkTarget, checkUrlShape, type Environment, toCidrs } from "./validator.js";

export type DeliveryErrorType = "dns" | "refused_target" | "timeout" | "connection" | "tls" | "http_status";

export interface DeliveryResult {
  /** True for a 2xx whose body (up to the cap) arrived within the timeout. */
  ok: boolean;
  status?: number;
  /** Response headers, lower-case names; repeated headers joined with ", ". */
  headers?: Record<string, string>;
  /** Response body as UTF-8, cut at `maxResponseBytes` (on a character boundary). */
  body: string;
  durationMs: number;
  errorType?: DeliveryErrorType;
  /** Human sentence; never contains the URL's path or query, the request headers or the body. */
  error?: string;
}

/** A DNS answer; `ttl` in seconds. Plain strings carry no TTL and are therefore not cached. */
export type DnsRecord = string | { address: string; ttl?: number };
export type DnsResolve = (host: string) => Promise<readonly DnsRecord[]>;

export interface DeliveryClientOptions {
  /** Budget for the whole request: connect, send, headers and body. */
  timeoutMs: number;
  /** WEBHOOK_ALLOW_TARGETS, raw or parsed: exempt from the range and port rules. */
  allowTargets?: readonly string[] | readonly Cidr[];
  /** "production" refuses plain http. Default "development". */
  environment?: Environment;
  maxResponseBytes?: number;
  /**
   * Sockets per pool; default 16. A request given a `pool` key (the webhook's id) uses a pool of
   * its own, so webhooks that share a host:port (many customers on one hosted service) never
   * wait for each other's sockets; without a key, one pool per origin.
   */
  connectionsPerOrigin?: number;
  /** Pools kept at most; the least recently used idle one is closed past that. Default 10,000. */
  maxPools?: number;
  /** DNS resolution (A + AAAA). Default: node:dns `resolve4`/`resolve6` with TTLs. */
  resolve?: DnsResolve;
  /** Upper bound on how long an answer is cached, whatever its TTL. Default 5 min. */
  maxDnsTtlMs?: number;
  /** Clock for the DNS cache (tests). */
  now?: () => number;
  /** Extra trusted CA certificates (tests, private PKI), added to Node's bundled Mozilla roots. */
  ca?: ConnectionOptions["ca"];
}

export interface DeliveryClient {
  /**
   * POSTs `body`; never throws for a delivery failure, it returns a classified result. `signal`
   * cancels the request (a worker giving the delivery back at shutdown); `pool` names the
   * connection pool to use (the webhook's id).
   */
  post(
    url: string,
    body: string,
    headers: Record<string, string>,
    opts?: { signal?: AbortSignal; pool?: string },
  ): Promise<DeliveryResult>;
  /** The cached resolver, as addresses: pass it to `validateWebhookUrl` so both share answers. */
  resolve(host: string): Promise<string[]>;
  close(): Promise<void>;
}

/** Thrown inside the connect hook; never escapes `post`. */
export class RefusedTargetError extends Error {
  readonly code = "ERR_REFUSED_TARGET";
}

export class DnsLookupError extends Error {
  readonly code = "ERR_DNS_LOOKUP";
}

class DeliveryTimeoutError extends Error {
  readonly code = "ERR_DELIVERY_TIMEOUT";
}

export interface DnsCache {
  lookup(host: string): Promise<string[]>;
  readonly size: number;
  clear(): void;
}

const MAX_CACHE_ENTRIES = 10_000;

/**
 * Caches answers for the smallest TTL among the records (capped), dedupes concurrent lookups of
 * one name, and never caches failures or TTL-less answers. Addresses come back IPv4 first:
 * servers more often have working IPv4 than IPv6, and the connector tries them in order.
 */
export function createDnsCache(opts: {
  resolve: DnsResolve;
  maxTtlMs?: number;
  now?: () => number;
}): DnsCache {
  const now = opts.now ?? Date.now;
  const maxTtlMs = opts.maxTtlMs ?? 300_000;
  const entries = new Map<string, { addresses: string[]; expiresAt: number }>();
  const pending = new Map<string, Promise<string[]>>();

  async function fetchAnswer(host: string): Promise<string[]> {
    const records = await opts.resolve(host);
    let ttlMs = maxTtlMs;
    const v4: string[] = [];
    const v6: string[] = [];
    for (const r of records) {
      const address = typeof r === "string" ? r : r.address;
      const ttl = typeof r === "string" ? undefined : r.ttl;
      ttlMs = Math.min(ttlMs, ttl === undefined ? 0 : Math.max(0, ttl * 1000));
      const list = address.includes(":") ? v6 : v4;
      if (!list.includes(address)) list.push(address);
    }
    const addresses = [...v4, ...v6];
    if (addresses.length > 0 && ttlMs > 0) {
      if (entries.size >= MAX_CACHE_ENTRIES) {
        const oldest = entries.keys().next();
        if (!oldest.done) entries.delete(oldest.value);
      }
      entries.set(host, { addresses, expiresAt: now() + ttlMs });
    }
    return addresses;
  }

  return {
    lookup(rawHost: string): Promise<string[]> {
      const host = rawHost.toLowerCase();
      const hit = entries.get(host);
      if (hit !== undefined) {
        if (hit.expiresAt > now()) return Promise.resolve(hit.addresses);
        entries.delete(host);
      }
      let inflight = pending.get(host);
      if (inflight === undefined) {
        inflight = fetchAnswer(host).finally(() => pending.delete(host));
        pending.set(host, inflight);
      }
      return inflight;
    },
    get size() {
      return entries.size;
    },
    clear() {
      entries.clear();
    },
  };
}

/** A and AAAA over node:dns (c-ares), which unlike getaddrinfo reports TTLs. */
export function createSystemResolver(): DnsResolve {
  const resolver = new Resolver({ timeout: 5_000, tries: 2 });
  return async (host) => {
    const [a, aaaa] = await Promise.allSettled([
      resolver.resolve4(host, { ttl: true }),
      resolver.resolve6(host, { ttl: true }),
    ]);
    const records = [
      ...(a.status === "fulfilled" ? a.value : []),
      ...(aaaa.status === "fulfilled" ? aaaa.value : []),
    ];
    if (records.length === 0 && a.status === "rejected") throw a.reason;
    return records;
  };
}

// Connect errors after which the next resolved address is worth a try (poor man's happy eyeballs).
const NEXT_ADDRESS_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ETIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT",
]);
const MAX_ADDRESSES_TRIED = 4;

function guardedConnector(
  base: buildConnector.connector,
  dns: DnsCache,
  allowTargets: readonly Cidr[],
): buildConnector.connector {
  return (opts, callback) => {
    const host = opts.hostname;
    const port = Number(opts.port) || (opts.protocol === "https:" ? 443 : 80);
    const answer = isIP(host) !== 0 ? Promise.resolve([host]) : dns.lookup(host);
    answer.then(
      (addresses) => {
        if (addresses.length === 0) {
          callback(new DnsLookupError(`DNS lookup for "${host}" returned no addresses`), null);
          return;
        }
        // All or nothing, as at registration: a mixed answer is a rebinding setup.
        for (const address of addresses) {
          const verdict = checkTarget(address, port, allowTargets);
          if (!verdict.ok) {
            const what = address === host ? "" : `"${host}" resolved to a denied target: `;
            callback(new RefusedTargetError(`${what}${verdict.reason}`), null);
            return;
          }
        }
        const dial = (i: number): void => {
          const address = addresses[i] as string;
          base({ ...opts, hostname: address }, (err, socket) => {
            const code = (err as NodeJS.ErrnoException | null)?.code;
            if (
              err &&
              code &&
              NEXT_ADDRESS_CODES.has(code) &&
              i + 1 < Math.min(addresses.length, MAX_ADDRESSES_TRIED)
            ) {
              dial(i + 1);
            } else if (err) {
              callback(err, null);
            } else {
              callback(null, socket as NonNullable<typeof socket>);
            }
          });
        };
        dial(0);
      },
      (err: unknown) => {
        const code = (err as NodeJS.ErrnoException | null)?.code;
        callback(new DnsLookupError(`DNS lookup for "${host}" failed${code ? ` (${code})` : ""}`), null);
      },
    );
  };
}

export function createDeliveryClient(options: DeliveryClientOptions): DeliveryClient {
  const timeoutMs = options.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error("timeoutMs must be a positive number");
  const environment = options.environment ?? "development";
  const maxBytes = options.maxResponseBytes ?? 65_536;
  const allowTargets = toCidrs(options.allowTargets);
  const dns = createDnsCache({
    resolve: options.resolve ?? createSystemResolver(),
    maxTtlMs: options.maxDnsTtlMs,
    now: options.now,
  });
  const base = buildConnector({
    timeout: Math.min(timeoutMs, 10_000),
    // A bare `ca` would replace the default roots rather than extend them.
    ...(options.ca !== undefined ? { ca: [...rootCertificates, ...[options.ca].flat()] } : {}),
  });
  const connect = guardedConnector(base, dns, allowTargets);
  const newAgent = () =>
    new Agent({
      connect,
      connections: options.connectionsPerOrigin ?? 16,
      pipelining: 1,
      // Our own timer bounds the whole request; these only make undici give up no later than it.
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveMaxTimeout: 60_000,
    });
  const agent = newAgent();
  /** Keyed pools, least recently used first (a Map keeps insertion order). */
  const pools = new Map<string, Agent>();
  const maxPools = options.maxPools ?? 10_000;
  const poolFor = (key: string | undefined): Agent => {
    if (key === undefined) return agent;
    let a = pools.get(key);
    if (a) {
      pools.delete(key);
    } else {
      a = newAgent();
      if (pools.size >= maxPools) {
        const [oldKey, old] = pools.entries().next().value as [string, Agent];
        pools.delete(oldKey);
        // Requests still running on it finish; only then does it close.
        void old.close().catch(() => {});
      }
    }
    pools.set(key, a);
    return a;
  };
  let closing: Promise<void> | undefined;

  async function post(
    url: string,
    body: string,
    headers: Record<string, string>,
    opts: { signal?: AbortSignal; pool?: string } = {},
  ): Promise<DeliveryResult> {
    const signal = opts.signal;
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const shape = checkUrlShape(url, environment);
    if (!shape.ok)
      return { ok: false, body: "", durationMs: elapsed(), errorType: "refused_target", error: shape.reason };
    const target = shape.url;

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DeliveryTimeoutError()), timeoutMs);
    const cancel = () => controller.abort(signal?.reason);
    if (signal?.aborted) cancel();
    else signal?.addEventListener("abort", cancel, { once: true });
    const sink: BodySink = { chunks: [], bytes: 0, truncated: false };
    let status: number | undefined;
    let responseHeaders: Record<string, string> | undefined;
    try {
      const res = await poolFor(opts.pool).request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: "POST",
        headers,
        body,
        signal: controller.signal,
      });
      status = res.statusCode;
      responseHeaders = flattenHeaders(res.headers);
      await readCapped(res.body, maxBytes, sink);
      const ok = status >= 200 && status < 300;
      const result: DeliveryResult = {
        ok,
        status,
        headers: responseHeaders,
        body: decode(sink),
        durationMs: elapsed(),
      };
      if (!ok) {
        result.errorType = "http_status";
        result.error = `the endpoint answered HTTP ${status}`;
      }
      return result;
    } catch (err) {
      const { type, message } = classifyError(err, controller.signal.aborted && !signal?.aborted, timeoutMs);
      const result: DeliveryResult = {
        ok: false,
        body: decode(sink),
        durationMs: elapsed(),
        errorType: type,
        error: message,
      };
      if (status !== undefined) result.status = status;
      if (responseHeaders !== undefined) result.headers = responseHeaders;
      return result;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", cancel);
    }
  }

  return {
    post,
    resolve: async (host) => [...(await dns.lookup(host))],
    close() {
      closing ??= Promise.all([agent.close(), ...[...pools.values()].map((a) => a.close())]).then(() => {});
      return closing;
    },
  };
}

interface BodySink {
  chunks: Buffer[];
  bytes: number;
  truncated: boolean;
}

/** Reads at most `max` bytes, then destroys the stream (and so the socket) instead of draining it. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): unknown }, max: number, sink: BodySink) {
  for await (const chunk of body) {
    const room = max - sink.bytes;
    if (chunk.length > room) {
      if (room > 0) sink.chunks.push(chunk.subarray(0, room));
      sink.bytes = max;
      sink.truncated = true;
      body.destroy();
      return;
    }
    sink.chunks.push(chunk);
    sink.bytes += chunk.length;
  }
}

function decode(sink: BodySink): string {
  if (sink.bytes === 0) return "";
  const buf = sink.chunks.length === 1 ? (sink.chunks[0] as Buffer) : Buffer.concat(sink.chunks);
  return buf.toString("utf8", 0, sink.truncated ? utf8Boundary(buf) : buf.length);
}

/** Length of `buf` without a trailing, cut-off multi-byte UTF-8 sequence. */
function utf8Boundary(buf: Buffer): number {
  let i = buf.length - 1;
  let continuation = 0;
  while (i >= 0 && continuation < 3 && ((buf[i] as number) & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i < 0) return buf.length;
  const lead = buf[i] as number;
  const need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
  return need > continuation ? i : buf.length;
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

// undici's UND_ERR_{HEADERS,BODY,CONNECT}_TIMEOUT and the kernel's ETIMEDOUT.
const TIMEOUT_CODE = /^(UND_ERR_\w+_TIMEOUT|ETIMEDOUT)$/;
// Node's ERR_TLS_*/ERR_SSL_*, OpenSSL verify codes (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT,
// UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...) and EPROTO from a handshake with a non-TLS server.
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|EPROTO$|HOSTNAME_MISMATCH$)|CERT/;
const CONNECTION_MESSAGES: Record<string, string> = {
  ECONNREFUSED: "the connection was refused",
  ECONNRESET: "the connection was reset by the endpoint",
  EPIPE: "the connection was closed while sending",
  UND_ERR_SOCKET: "the endpoint closed the connection unexpectedly",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
};

/**
 * Maps an error to the contract's categories. Messages are built from error codes, never from
 * `err.message`, which for some errors embeds URLs or header values.
 */
function classifyError(
  err: unknown,
  timedOut: boolean,
  timeoutMs: number,
): { type: DeliveryErrorType; message: string } {
  if (timedOut) return { type: "timeout", message: `the request did not complete within ${timeoutMs} ms` };
  if (err instanceof RefusedTargetError) return { type: "refused_target", message: err.message };
  if (err instanceof DnsLookupError) return { type: "dns", message: err.message };
  const code = errorCode(err);
  if (TIMEOUT_CODE.test(code)) return { type: "timeout", message: `timed out (${code})` };
  if (TLS_CODE.test(code)) {
    return { type: "tls", message: `TLS handshake or certificate check failed (${code})` };
  }
  const known = CONNECTION_MESSAGES[code];
  return { type: "connection", message: known ? `${known} (${code})` : `the connection failed (${code})` };
}

function errorCode(err: unknown): string {
  // undici sometimes wraps the socket error; the first coded error in the chain is the real one.
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code !== "") return code;
    e = e.cause;
  }
  return err instanceof Error ? err.name : "unknown error";
}
