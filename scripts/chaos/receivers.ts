/**
 * Why this exists: the endpoints of a campaign. One loopback HTTP server per webhook, so the
 * requests in flight at a server are that webhook's concurrency as its endpoint saw it, whichever
 * process sent them. Each records every request (with both signatures verified against the
 * webhook's secret and what it answered) and can be switched, by the fault schedule, between:
 *
 * - ok: 200 after 0–15 ms;  slow: 200 after about `ms` (keeps requests in flight: the per-webhook
 *   limit is really under pressure);  error: a 5xx;  reset: the TCP connection is reset once the
 *   body has arrived;
 * - hang: no answer. The server itself gives up after `hangMs` (the service's WEBHOOK_TIMEOUT plus
 *   a second) and resets the connection, as real servers time out too: a live sender has long
 *   abandoned the request by then, so only a frozen (SIGSTOPped) sender's request would otherwise
 *   stay "in flight" here for as long as it is frozen, which is not concurrency the service chose.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Webhook } from "standardwebhooks";
import type { InFlightPeak, Receipt, ReplyKind } from "./history.js";

export type ReceiverMode =
  | { kind: "ok" }
  | { kind: "slow"; ms: number }
  | { kind: "error"; status: number }
  | { kind: "hang" }
  | { kind: "reset" };

export interface ChaosReceiver {
  readonly name: string;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  secret: string | null;
  readonly mode: ReceiverMode;
  setMode(mode: ReceiverMode): void;
  readonly receipts: readonly Receipt[];
  readonly inFlight: number;
  readonly peak: InFlightPeak;
  close(): Promise<void>;
}

function header(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(" ") : (v ?? "");
}

/** Both signature families, checked independently of the service's own verifier. */
export function verifySignatures(
  secret: string | null,
  body: Buffer,
  get: (name: string) => string,
): string | null {
  if (!secret) return "no secret known for this receiver";
  const id = get("webhook-id");
  if (id !== get("x-continuum-delivery")) return "webhook-id differs from X-Continuum-Delivery";
  try {
    new Webhook(secret).verify(body, {
      "webhook-id": id,
      "webhook-timestamp": get("webhook-timestamp"),
      "webhook-signature": get("webhook-signature"),
    });
  } catch (err) {
    return `webhook-signature: ${(err as Error).message}`;
  }
  const ts = get("x-continuum-timestamp");
  if (!/^\d+$/.test(ts)) return "X-Continuum-Timestamp missing or malformed";
  const want = createHmac("sha256", secret).update(`${ts}.`).update(body).digest();
  const ok = get("x-continuum-signature")
    .split(" ")
    .some((sig) => /^[0-9a-f]{64}$/i.test(sig) && timingSafeEqual(Buffer.from(sig, "hex"), want));
  return ok ? null : "X-Continuum-Signature does not match";
}

export async function startChaosReceiver(name: string, opts: { hangMs: number }): Promise<ChaosReceiver> {
  let mode: ReceiverMode = { kind: "ok" };
  let inFlight = 0;
  const peak: InFlightPeak = { max: 0, at: 0 };
  const receipts: Receipt[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const self = { secret: null as string | null };

  const server = createServer((req, res) => {
    inFlight++;
    if (inFlight > peak.max) {
      peak.max = inFlight;
      peak.at = Date.now();
    }
    let open = true;
    res.on("close", () => {
      if (open) {
        open = false;
        inFlight--;
      }
    });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const current = mode;
      const reply: ReplyKind = current.kind;
      let env: { id?: unknown; event?: unknown; user_id?: unknown; data?: { chaos_key?: unknown } } = {};
      try {
        env = JSON.parse(body.toString("utf8")) as typeof env;
      } catch {}
      const str = (v: unknown) => (typeof v === "string" ? v : null);
      const receipt: Receipt = {
        webhook: name,
        path: req.url ?? "",
        deliveryId: header(req, "webhook-id"),
        eventId: str(env.id),
        event: str(env.event),
        userId: str(env.user_id),
        key: str(env.data?.chaos_key),
        receivedAt: Date.now(),
        reply,
        delivered: false,
        signatureOk: false,
        signatureError: null,
      };
      receipt.signatureError = verifySignatures(self.secret, body, (n) => header(req, n));
      receipt.signatureOk = receipt.signatureError === null;
      receipts.push(receipt);

      const ok = (delayMs: number) =>
        later(delayMs, () => {
          if (res.destroyed) return;
          res.on("finish", () => {
            receipt.delivered = true;
          });
          res.writeHead(200, { "content-type": "text/plain" }).end("ok");
        });
      switch (current.kind) {
        case "ok":
          ok(Math.floor(Math.random() * 15));
          break;
        case "slow":
          ok(Math.floor(current.ms * (0.5 + Math.random())));
          break;
        case "error":
          res.writeHead(current.status, { "content-type": "text/plain" }).end("chaos: failing");
          break;
        case "reset":
          res.socket?.resetAndDestroy();
          break;
        case "hang":
          later(opts.hangMs, () => {
            if (!res.destroyed) res.socket?.resetAndDestroy();
          });
          break;
      }
    });
  });
  server.keepAliveTimeout = 5000;
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  server.on("clientError", (_e, s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    get secret() {
      return self.secret;
    },
    set secret(s: string | null) {
      self.secret = s;
    },
    get mode() {
      return mode;
    },
    setMode(m) {
      mode = m;
    },
    receipts,
    get inFlight() {
      return inFlight;
    },
    peak,
    close() {
      return new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
