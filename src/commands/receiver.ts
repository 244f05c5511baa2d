/**
 * `continuum-webhooks receiver`: a local endpoint for trying the service out. It verifies every
 * delivery exactly as a production receiver should (continuum-webhooks/verify), de-duplicates by
 * delivery id, prints one line per request, and can fail on purpose to rehearse retries.
 */
import { createServer } from "node:http";
import { isValidSecret } from "../signer.js";
import { verifyWebhook, WebhookVerificationError } from "../verify.js";
import { UsageError } from "./errors.js";

export interface ReceiverOptions {
  port: number;
  host: string;
  path: string;
  secrets: string[];
  failRate: number;
  failStatus: number;
  /** Where lines go (tests capture them). */
  out?: (line: string) => void;
}

const SEEN_MAX = 100_000;

export function parseReceiverOptions(o: Record<string, unknown>): ReceiverOptions {
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError("--port must be 0 to 65535");
  const secretText = typeof o.secret === "string" ? o.secret : process.env.CONTINUUM_WEBHOOK_SECRET;
  if (!secretText) throw new UsageError("--secret is required (or set CONTINUUM_WEBHOOK_SECRET)");
  const secrets = secretText.split(",").map((s) => s.trim());
  if (!secrets.every(isValidSecret))
    throw new UsageError("--secret must be whsec_… as shown when the webhook was created");
  const path = typeof o.path === "string" ? o.path : "/";
  if (!path.startsWith("/")) throw new UsageError("--path must start with /");
  const failRate = o.failRate === undefined ? 0 : Number(o.failRate);
  if (!(failRate >= 0 && failRate <= 1)) throw new UsageError("--fail-rate must be a number from 0 to 1");
  const failStatus = o.failStatus === undefined ? 500 : Number(o.failStatus);
  if (!Number.isInteger(failStatus) || failStatus < 300 || failStatus > 599) {
    throw new UsageError("--fail-status must be an HTTP status from 300 to 599");
  }
  const host = typeof o.host === "string" ? o.host : "127.0.0.1";
  return { port, host, path, secrets, failRate, failStatus };
}

export function startReceiver(opts: ReceiverOptions): Promise<{ port: number; close(): Promise<void> }> {
  const print = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = new Date().toISOString();
      const url = new URL(req.url ?? "/", "http://receiver");
      if (req.method !== "POST" || url.pathname !== opts.path) {
        res.writeHead(404).end();
        return;
      }
      const delivery = String(req.headers["webhook-id"] ?? req.headers["x-continuum-delivery"] ?? "-");
      const eventType = String(req.headers["x-continuum-event"] ?? "-");
      let event: { event?: string; id?: string };
      try {
        event = verifyWebhook({ body: Buffer.concat(chunks), headers: req.headers, secret: opts.secrets });
      } catch (err) {
        const reason = err instanceof WebhookVerificationError ? err.reason : "unreadable";
        print(`${at} ${eventType} ${delivery} rejected: ${reason}`);
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: reason }));
        return;
      }
      if (Math.random() < opts.failRate) {
        print(
          `${at} ${event.event ?? eventType} ${delivery} verified, answered ${opts.failStatus} (--fail-rate)`,
        );
        res.writeHead(opts.failStatus).end();
        return;
      }
      if (seen.has(delivery)) {
        print(`${at} ${event.event ?? eventType} ${delivery} verified, duplicate (already processed)`);
      } else {
        if (seen.size >= SEEN_MAX) seen.clear();
        seen.add(delivery);
        print(`${at} ${event.event ?? eventType} ${delivery} verified ${event.id ?? ""}`.trimEnd());
      }
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      const addr = server.address();
      resolve({
        port: typeof addr === "object" && addr ? addr.port : opts.port,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
