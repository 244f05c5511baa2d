/**
 * A receiver in its own process, as a real endpoint would be: verifies every request's signature
 * with continuum-webhooks/verify, counts verified deliveries and records, per delivery, the time
 * it arrived and the emit time the payload carries (data.t, ms since epoch).
 *
 * It also counts requests in flight per path (from the request's headers to the end of the
 * answer): the most it saw at once, and the time-weighted sum, so the client can tell the mean.
 * This receiver answers each request within the turn of the event loop its body arrived in, so on
 * its own it never has more than one in flight: paths under `/delay/<ms>/` are verified the same
 * way and answered after <ms> milliseconds, which makes a sender's concurrency visible (a real
 * endpoint takes a few ms too). Paths under `/hang/` are never answered: the receiver holds them
 * open (a hanging endpoint on the same host:port as the healthy ones) until a `release` message
 * destroys their sockets.
 *
 * Talks to its parent over IPC: {secrets: {path: secret}}, {report, reset}, {release} in,
 * {port} / a report out.
 */
import { createServer, type ServerResponse } from "node:http";
import { verifyWebhook } from "../src/verify.js";

let secrets: Record<string, string> = {};
let verified = 0;
let rejected = 0;
const seen = new Set<string>();
let duplicates = 0;
let latencies: number[] = [];

/** Per path: requests in flight now, the most at once since the last reset, ms × requests. */
const flight = new Map<string, { now: number; max: number; busyMs: number; at: number }>();
let allNow = 0;
let allMax = 0;
const held = new Set<ServerResponse>();

function track(path: string, delta: 1 | -1): void {
  const t = performance.now();
  let f = flight.get(path);
  if (!f) {
    f = { now: 0, max: 0, busyMs: 0, at: t };
    flight.set(path, f);
  }
  f.busyMs += f.now * (t - f.at);
  f.at = t;
  f.now += delta;
  if (f.now > f.max) f.max = f.now;
  allNow += delta;
  if (allNow > allMax) allMax = allNow;
}

const server = createServer((req, res) => {
  const path = req.url ?? "";
  track(path, 1);
  res.once("close", () => track(path, -1));
  if (path.startsWith("/hang/")) {
    req.resume();
    held.add(res);
    res.once("close", () => held.delete(res));
    return;
  }
  const delay = /^\/delay\/(\d+)\//.exec(path);
  const delayMs = delay ? Number(delay[1]) : 0;
  const answer = (code: number, text: string) => {
    if (delayMs > 0) setTimeout(() => res.writeHead(code).end(text), delayMs);
    else res.writeHead(code).end(text);
  };
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const secret = secrets[path];
    try {
      if (!secret) throw new Error("unknown path");
      const event = verifyWebhook<{ data: { t?: number } }>({ body, headers: req.headers, secret });
      verified++;
      const id = String(req.headers["webhook-id"]);
      if (seen.has(id)) duplicates++;
      else seen.add(id);
      if (typeof event.data.t === "number") latencies.push(Date.now() - event.data.t);
      answer(200, "ok");
    } catch {
      rejected++;
      answer(400, "bad");
    }
  });
});
server.keepAliveTimeout = 60_000;
server.requestTimeout = 0; // held requests stay held: the sender's timeout is what we measure

process.on(
  "message",
  (msg: { secrets?: Record<string, string>; report?: boolean; reset?: boolean; release?: boolean }) => {
    if (msg.secrets) secrets = { ...secrets, ...msg.secrets };
    if (msg.release) {
      for (const res of held) res.socket?.destroy();
      held.clear();
    }
    if (msg.reset) {
      verified = 0;
      rejected = 0;
      duplicates = 0;
      seen.clear();
      latencies = [];
      const t = performance.now();
      for (const f of flight.values()) {
        f.max = f.now;
        f.busyMs = 0;
        f.at = t;
      }
      allMax = allNow;
    }
    if (msg.report) {
      const rss = process.memoryUsage().rss;
      const t = performance.now();
      const maxInFlight: Record<string, number> = {};
      const busyMs: Record<string, number> = {};
      for (const [path, f] of flight) {
        f.busyMs += f.now * (t - f.at);
        f.at = t;
        maxInFlight[path] = f.max;
        busyMs[path] = f.busyMs;
      }
      process.send?.({
        verified,
        rejected,
        duplicates,
        latencies,
        rss,
        maxInFlight,
        busyMs,
        maxInFlightAll: allMax,
        held: held.size,
      });
      latencies = [];
    }
  },
);

server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  process.send?.({ port: typeof addr === "object" && addr ? addr.port : 0 });
});
