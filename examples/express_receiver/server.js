/**
 * A complete CONTINUUM webhook receiver with Express 5.
 *
 *   npm install express continuum-webhooks
 *   CONTINUUM_WEBHOOK_SECRET=whsec_... PORT=3000 node server.js
 *
 * Endpoint: POST /webhooks/continuum. For each delivery it
 *   1. verifies the signature over the raw body, and the timestamp (5-minute window);
 *   2. drops duplicates by delivery id (retries reuse it);
 *   3. answers 200 at once and runs the handler for the event type right after.
 * A bad delivery gets 400 with the reason (missing_header, malformed, expired, bad_signature).
 */

// The verifier published with the service: no runtime dependency besides node:crypto. (Without
// the package, copy ../verify_webhook.js and import { verifyWebhook } from it instead.)
import { verifyWebhook, WebhookVerificationError } from "continuum-webhooks/verify";
import express from "express";

const WEBHOOK_PATH = "/webhooks/continuum";
const PORT = Number(process.env.PORT ?? 3000);
const HOST = process.env.HOST; // unset: every interface

// Several secrets may be given separated by spaces, to rotate without downtime: add the new one,
// rotate in CONTINUUM, remove the old one after 24 h.
const SECRETS = (process.env.CONTINUUM_WEBHOOK_SECRET ?? "").split(/\s+/).filter(Boolean);
if (SECRETS.length === 0) {
  console.error("set CONTINUUM_WEBHOOK_SECRET to the webhook's secret (whsec_...)");
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// De-duplication. CONTINUUM delivers at least once: when our 200 is lost, it sends the same
// delivery (same id) again. This Map is per process and forgotten on restart; in production keep
// the ids in Redis (SET dedupe:<id> 1 NX EX 86400) or a UNIQUE column written with your side effects.

const DEDUPE_TTL_MS = 24 * 60 * 60 * 1000;
const DEDUPE_MAX = 100_000;
const recent = new Map(); // delivery id → expiry; oldest first

function claim(deliveryId) {
  const now = Date.now();
  for (const [id, expiry] of recent) {
    if (expiry > now) break;
    recent.delete(id);
  }
  if (recent.has(deliveryId)) return false;
  if (recent.size >= DEDUPE_MAX) recent.delete(recent.keys().next().value);
  recent.set(deliveryId, now + DEDUPE_TTL_MS);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Event handlers, one per type (docs/EVENTS.md lists each type's data fields). Unknown types are
// ignored on purpose: new event types may appear at any time.

const handlers = {
  "memory.created": ({ data }) => console.log(`new memory ${data.memory_id}: ${data.content_preview}`),
  "sync.failed": ({ data }) =>
    console.warn(`sync ${data.sync_id} failed (retryable: ${data.retryable}): ${data.error}`),
  "quota.warning": ({ event, data }) => console.warn(`${event}: ${data.resource} ${data.used}/${data.limit}`),
  "quota.exceeded": ({ event, data }) =>
    console.warn(`${event}: ${data.resource} ${data.used}/${data.limit}`),
  "webhook.test": ({ data }) => console.log(`test delivery received: ${data.message}`),
};

async function dispatch(event, deliveryId) {
  try {
    await handlers[event.event]?.(event);
    console.log(`processed ${event.event} ${deliveryId}`);
  } catch (error) {
    // We already answered 200, so CONTINUUM will not retry: forget the id so that a manual
    // redelivery (the API's retry) is processed, and make the failure visible.
    recent.delete(deliveryId);
    console.error(`handler for ${event.event} failed on delivery ${deliveryId}:`, error);
  }
}

// ---------------------------------------------------------------------------------------------
// The app

const app = express();

app.post(
  WEBHOOK_PATH,
  // The raw bytes, exactly as sent: the signature covers them. express.json() would parse them,
  // and re-serializing could change spacing or escaping and break verification. Mount no JSON
  // parser before this route.
  express.raw({ type: "application/json", limit: "2mb" }),
  (req, res) => {
    let event;
    try {
      event = verifyWebhook({
        body: Buffer.isBuffer(req.body) ? req.body : "",
        headers: req.headers,
        secret: SECRETS,
      });
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      console.warn(`rejected delivery: ${error.reason} (${error.message})`);
      return res.status(400).json({ error: "invalid_signature", reason: error.reason });
    }

    // webhook-id is covered by the Standard Webhooks signature; X-Continuum-Delivery is equal.
    const deliveryId = req.get("webhook-id") ?? req.get("x-continuum-delivery") ?? "";
    if (deliveryId && !claim(deliveryId)) {
      return res.json({ status: "duplicate", delivery_id: deliveryId });
    }

    // Answer within milliseconds, then do the work. CONTINUUM times out after 30 s and retries,
    // so slow work must never sit in the request. For work that must survive a crash of this
    // process, write the event to a durable queue or table here, before answering.
    res.json({ status: "ok", delivery_id: deliveryId });
    setImmediate(() => dispatch(event, deliveryId));
  },
);

app.get("/health", (_req, res) => {
  res.json({ status: "ok" });
});

const server = app.listen(PORT, HOST, (error) => {
  if (error) throw error;
  const { port } = server.address();
  console.log(`listening on http://${HOST ?? "localhost"}:${port}${WEBHOOK_PATH}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
