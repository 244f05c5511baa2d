"""A complete CONTINUUM webhook receiver built with FastAPI.

    export CONTINUUM_WEBHOOK_SECRET=whsec_...   # shown once when you created the webhook
    uvicorn main:app --port 8000

Endpoint: POST /webhooks/continuum. For each delivery it

1. verifies the signature over the raw body, and the timestamp (5-minute window);
2. drops duplicates by delivery id (retries reuse it);
3. answers 200 at once and runs the handler for the event type in the background.

A bad delivery gets 400 with the reason (missing_header, malformed, expired, bad_signature).

Single file, no dependency beyond FastAPI: copy it and replace the handlers at the bottom.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("continuum.receiver")

WEBHOOK_PATH = "/webhooks/continuum"
TOLERANCE_SECONDS = 300

# Several secrets may be given separated by spaces, to rotate without downtime: add the new one,
# rotate in CONTINUUM, remove the old one after 24 h.
SECRETS = os.environ.get("CONTINUUM_WEBHOOK_SECRET", "").split()
if not SECRETS:
    raise RuntimeError("set CONTINUUM_WEBHOOK_SECRET to the webhook's secret (whsec_...)")


# ---------------------------------------------------------------------------------------------
# Verification (the same algorithm as ../verify_webhook.py, condensed)


class WebhookVerificationError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # missing_header | malformed | expired | bad_signature


def _header_map(headers: Any) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for name, value in headers.items():
        if value:
            key = name.lower()
            out[key] = f"{out[key]} {value}" if key in out else value
    return out


def _hmac_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret[6:] if secret.startswith("whsec_") else secret, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError("CONTINUUM_WEBHOOK_SECRET must be 'whsec_' followed by base64")
    return key


def verify_webhook(body: bytes, headers: Any, secrets: List[str], now: Optional[float] = None) -> Any:
    """Returns the parsed payload or raises WebhookVerificationError.

    Checks the Standard Webhooks headers (webhook-id/-timestamp/-signature) when present,
    otherwise X-Continuum-Signature/-Timestamp.
    """
    h = _header_map(headers)
    standard = "webhook-signature" in h
    signature_header = h.get("webhook-signature") or h.get("x-continuum-signature")
    if not signature_header:
        raise WebhookVerificationError("missing_header", "no webhook-signature or X-Continuum-Signature")
    webhook_id = h.get("webhook-id")
    if standard and webhook_id is None:
        raise WebhookVerificationError("missing_header", "missing webhook-id header")
    timestamp = h.get("webhook-timestamp" if standard else "x-continuum-timestamp")
    if timestamp is None:
        raise WebhookVerificationError("missing_header", "missing timestamp header")

    if not re.fullmatch(r"[0-9]{1,15}", timestamp):
        raise WebhookVerificationError("malformed", "timestamp is not unix seconds")
    candidates = []
    for token in signature_header.split():
        token = token.rstrip(",")
        if standard:
            version, _, signature = token.partition(",")
            if not version or not signature:
                raise WebhookVerificationError("malformed", "webhook-signature is not 'v1,<base64>'")
            if version == "v1":
                candidates.append(signature)
        elif re.fullmatch(r"[0-9a-fA-F]{64}", token):
            candidates.append(token.lower())
        else:
            raise WebhookVerificationError("malformed", "X-Continuum-Signature is not hex")

    # The replay window: a captured request is worthless after 5 minutes, and the timestamp is
    # signed, so it cannot be refreshed. Both directions, to bound clock skew.
    age = int(time.time() if now is None else now) - int(timestamp)
    if abs(age) > TOLERANCE_SECONDS:
        raise WebhookVerificationError("expired", f"timestamp is {age} s away from now")

    matched = False
    for secret in secrets:
        if standard:
            message = f"{webhook_id}.{timestamp}.".encode() + body
            expected = base64.b64encode(hmac.new(_hmac_key(secret), message, hashlib.sha256).digest())
        else:
            message = f"{timestamp}.".encode() + body
            expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()
        for candidate in candidates:
            # Constant time: response timing must not reveal how much of a guess was right.
            matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise WebhookVerificationError("bad_signature", "no signature matches the secret")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("malformed", "body is not JSON") from None


# ---------------------------------------------------------------------------------------------
# De-duplication. CONTINUUM delivers at least once: when our 200 is lost, it sends the same
# delivery (same id) again. In production keep the ids in Redis (SET dedupe:<id> 1 NX EX 86400)
# or in a UNIQUE column written with your side effects; this in-memory set is per process.


class RecentDeliveries:
    def __init__(self, ttl_seconds: float = 24 * 3600, max_entries: int = 100_000) -> None:
        self.ttl, self.max_entries = ttl_seconds, max_entries
        self.expiry: "OrderedDict[str, float]" = OrderedDict()
        self.lock = threading.Lock()

    def claim(self, delivery_id: str) -> bool:
        """True the first time an id is seen."""
        now = time.monotonic()
        with self.lock:
            while self.expiry and next(iter(self.expiry.values())) <= now:
                self.expiry.popitem(last=False)  # expired
            if delivery_id in self.expiry:
                return False
            if len(self.expiry) >= self.max_entries:
                self.expiry.popitem(last=False)  # full: forget the oldest
            self.expiry[delivery_id] = now + self.ttl
            return True

    def release(self, delivery_id: str) -> None:
        with self.lock:
            self.expiry.pop(delivery_id, None)


recent = RecentDeliveries()


# ---------------------------------------------------------------------------------------------
# Event handlers, one per type (see docs/EVENTS.md for each type's data fields).

Handler = Callable[[Dict[str, Any]], None]
HANDLERS: Dict[str, Handler] = {}


def on(event_type: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[event_type] = handler
        return handler

    return register


@on("memory.created")
def memory_created(event: Dict[str, Any]) -> None:
    data = event["data"]
    log.info("new memory %s: %s", data.get("memory_id"), data.get("content_preview"))


@on("sync.failed")
def sync_failed(event: Dict[str, Any]) -> None:
    data = event["data"]
    log.warning("sync %s failed (retryable=%s): %s", data.get("sync_id"), data.get("retryable"), data.get("error"))


@on("quota.warning")
@on("quota.exceeded")
def quota(event: Dict[str, Any]) -> None:
    data = event["data"]
    log.warning("%s: %s %s/%s", event["event"], data.get("resource"), data.get("used"), data.get("limit"))


@on("webhook.test")
def webhook_test(event: Dict[str, Any]) -> None:
    log.info("test delivery received: %s", event["data"].get("message"))


def dispatch(event: Dict[str, Any], delivery_id: str) -> None:
    handler = HANDLERS.get(event.get("event", ""))
    try:
        if handler is not None:
            handler(event)
        # Unknown types are ignored on purpose: new event types may be added at any time.
        log.info("processed %s %s", event.get("event"), delivery_id)
    except Exception:
        # We already answered 200, so CONTINUUM will not retry: forget the id so that a manual
        # redelivery ("retry" in the API) is processed, and make the failure visible.
        recent.release(delivery_id)
        log.exception("handler for %s failed on delivery %s", event.get("event"), delivery_id)


# ---------------------------------------------------------------------------------------------
# The app

app = FastAPI(title="CONTINUUM webhook receiver")


@app.post(WEBHOOK_PATH)
async def continuum_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
    # The raw bytes, exactly as sent: the signature covers them. Parsing and re-encoding the
    # JSON first could change spacing or escaping and break verification.
    body = await request.body()
    try:
        event = verify_webhook(body, request.headers, SECRETS)
    except WebhookVerificationError as e:
        log.warning("rejected delivery: %s (%s)", e.reason, e)
        return JSONResponse({"error": "invalid_signature", "reason": e.reason}, status_code=400)

    # webhook-id is covered by the Standard Webhooks signature; X-Continuum-Delivery is equal.
    delivery_id = request.headers.get("webhook-id") or request.headers.get("x-continuum-delivery", "")
    if delivery_id and not recent.claim(delivery_id):
        return JSONResponse({"status": "duplicate", "delivery_id": delivery_id})

    # Answer within milliseconds; the handler runs after the response is sent. CONTINUUM times a
    # delivery out after 30 s and retries it, so slow work must never sit in the request. For
    # work that must survive a crash of this process, write the event to a durable queue or table
    # here, before answering.
    background.add_task(dispatch, event, delivery_id)
    return JSONResponse({"status": "ok", "delivery_id": delivery_id})


@app.get("/health")
def health() -> Dict[str, str]:
    return {"status": "ok"}
