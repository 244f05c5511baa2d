/**
 * A receiver in its own process, as a real endpoint would be: verifies every request's signature
 * with continuum-webhooks/verify, counts verified deliveries and records, per delivery, the time
 * it arrived and the emit time the payload carries (data.t, ms since epoch).
 * Talks to its parent over IPC: {secrets: {path: secret}} in, {port} / {count, ...} out.
 */
import { createServer } from "node:http";
import { verifyWebhook } from "../src/verify.js";

let secrets: Record<string, string> = {};
let verified = 0;
let rejected = 0;
const seen = new Set<string>();
let duplicates = 0;
let latencies: number[] = [];

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const secret = secrets[req.url ?? ""];
    try {
      if (!secret) throw new Error("unknown path");
      const event = verifyWebhook<{ data: { t?: number } }>({ body, headers: req.headers, secret });
      verified++;
      const id = String(req.headers["webhook-id"]);
      if (seen.has(id)) duplicates++;
      else seen.add(id);
      if (typeof event.data.t === "number") latencies.push(Date.now() - event.data.t);
      res.writeHead(200).end("ok");
    } catch {
      rejected++;
      res.writeHead(400).end("bad");
    }
  });
});
server.keepAliveTimeout = 60_000;

process.on("message", (msg: { secrets?: Record<string, string>; report?: boolean; reset?: boolean }) => {
  if (msg.secrets) secrets = { ...secrets, ...msg.secrets };
  if (msg.reset) {
    verified = 0;
    rejected = 0;
    duplicates = 0;
    seen.clear();
    latencies = [];
  }
  if (msg.report) {
    const rss = process.memoryUsage().rss;
    process.send?.({ verified, rejected, duplicates, latencies, rss });
    latencies = [];
  }
});

server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  process.send?.({ port: typeof addr === "object" && addr ? addr.port : 0 });
});
