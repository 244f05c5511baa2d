"""Verify CONTINUUM webhooks in Python: standard library only, plus optional Flask, FastAPI and
Django adapters.

Copy this file into your project. The core (``verify_webhook``, ``Deduplicator``,
``WebhookReceiver``) imports nothing outside the standard library; each adapter imports its
framework only when you call it.

Every delivery carries two independent signature header families; checking either one is enough:

* ``X-Continuum-Signature``: hex HMAC-SHA256 of ``"{timestamp}.{body}"``, keyed by the UTF-8
  bytes of the whole secret string (``whsec_`` included), with ``X-Continuum-Timestamp``.
* Standard Webhooks (https://www.standardwebhooks.com): ``webhook-signature`` is
  ``"v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>"``, keyed by the
  base64-decoded part of the secret after ``whsec_``.

While a secret is being rotated, each header carries one signature per active secret,
space-separated; any one matching is enough.

Usage::

    from verify_webhook import WebhookReceiver, flask_view

    def on_event(event, delivery_id):
        print(event["event"], event["data"])

    receiver = WebhookReceiver(os.environ["CONTINUUM_WEBHOOK_SECRET"], on_event)

    # Flask
    app.add_url_rule("/webhooks/continuum", view_func=flask_view(receiver), methods=["POST"])
    # FastAPI
    app.include_router(fastapi_router(receiver, "/webhooks/continuum"))
    # Django (urls.py)
    urlpatterns = [path("webhooks/continuum", django_view(receiver))]
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "Deduplicator",
    "WebhookReceiver",
    "WebhookVerificationError",
    "delivery_id_of",
    "django_view",
    "fastapi_router",
    "flask_view",
    "verify_webhook",
]

# Deliveries older (or further in the future) than this are refused. A captured request can then
# be replayed only within this window, and the signed timestamp cannot be changed without
# breaking the signature. Five minutes leaves room for clock skew and slow networks.
DEFAULT_TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class WebhookVerificationError(Exception):
    """The request must be rejected (answer 400). ``reason`` says which check failed:

    * ``missing_header``: no signature header, or its family lacks the id/timestamp header;
    * ``malformed``: timestamp not unix seconds, signature header in the wrong shape, or a body
      that is not JSON;
    * ``expired``: timestamp more than the tolerance away from now, in the past or the future;
    * ``bad_signature``: no signature matches any of your secrets.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _lower_headers(headers: Any) -> Dict[str, str]:
    """Any mapping of header names (in any case) to values, as ``{lowercase name: value}``.

    Works with a plain dict, Flask's ``request.headers``, Django's ``request.headers`` and
    Starlette's ``request.headers``. A header sent twice has its values joined with a space, so
    the signatures of both copies are considered.
    """
    items = headers.items() if hasattr(headers, "items") else headers
    out: Dict[str, str] = {}
    for name, value in items:
        if value is None or value == "":
            continue  # an empty header counts as absent
        key = str(name).lower()
        out[key] = f"{out[key]} {value}" if key in out else str(value)
    return out


def _tokens(header: str) -> List[str]:
    # A duplicated header joined with commas ("v1,a, v1,b") leaves a trailing comma on a token.
    return [t[:-1] if t.endswith(",") else t for t in header.split()]


def _standard_key(secret: str) -> bytes:
    encoded = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        # Never fall back to an empty key: anyone could compute that HMAC.
        raise ValueError("the webhook secret must be 'whsec_' followed by base64")
    return key


def verify_webhook(
    body: Union[bytes, str],
    headers: Any,
    secret: Union[str, Sequence[str]],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: Optional[float] = None,
) -> Any:
    """Verify one delivery and return its parsed JSON payload.

    ``body`` must be the raw request body exactly as received. Never verify a re-serialized
    ``request.json``: a different key order or spacing changes the bytes and the HMAC.
    ``secret`` may be a list (during a rotation on your side, pass the new and the old one).

    Raises ``WebhookVerificationError`` with a ``reason``. Checks run in a fixed order:
    missing_header, malformed, expired, bad_signature.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or any(not isinstance(s, str) or not s for s in secrets):
        raise TypeError("verify_webhook needs a non-empty secret")
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    h = _lower_headers(headers)

    # 1. Headers present. The Standard Webhooks family wins when its signature header is there.
    standard = "webhook-signature" in h
    signature_header = h.get("webhook-signature", h.get("x-continuum-signature"))
    if signature_header is None:
        raise WebhookVerificationError(
            "missing_header", "no webhook-signature or X-Continuum-Signature header"
        )
    webhook_id = h.get("webhook-id")
    if standard and webhook_id is None:
        raise WebhookVerificationError("missing_header", "missing webhook-id header")
    timestamp = h.get("webhook-timestamp" if standard else "x-continuum-timestamp")
    if timestamp is None:
        name = "webhook-timestamp" if standard else "X-Continuum-Timestamp"
        raise WebhookVerificationError("missing_header", f"missing {name} header")

    # 2. Well-formed.
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookVerificationError("malformed", "timestamp header is not unix seconds")
    tokens = _tokens(signature_header)
    if not tokens:
        raise WebhookVerificationError("malformed", "empty signature header")
    candidates: List[str] = []
    for token in tokens:
        if standard:
            version, comma, signature = token.partition(",")
            if not version or not comma or not signature:
                raise WebhookVerificationError("malformed", "webhook-signature is not 'v1,<base64>'")
            if version == "v1":  # other versions (v1a: asymmetric) are skipped, as the spec asks
                candidates.append(signature)
        elif _HEX_SIGNATURE.fullmatch(token):
            candidates.append(token.lower())
        else:
            raise WebhookVerificationError("malformed", "X-Continuum-Signature is not hex HMAC-SHA256")

    # 3. Inside the replay window, in both directions (the boundary itself is accepted).
    current = int(time.time() if now is None else now)
    age = current - int(timestamp)
    if age > tolerance_seconds:
        raise WebhookVerificationError("expired", f"timestamp is {age} s old")
    if -age > tolerance_seconds:
        raise WebhookVerificationError("expired", f"timestamp is {-age} s in the future")

    # 4. Signature. hmac.compare_digest takes the same time wherever the strings differ, so an
    # attacker cannot learn a valid signature byte by byte from response times. We also check
    # every candidate against every secret without stopping early.
    matched = False
    for s in secrets:
        if standard:
            signed = f"{webhook_id}.{timestamp}.".encode("utf-8") + raw
            digest = hmac.new(_standard_key(s), signed, hashlib.sha256).digest()
            expected = base64.b64encode(digest).decode("ascii")
        else:
            signed = f"{timestamp}.".encode("utf-8") + raw
            expected = hmac.new(s.encode("utf-8"), signed, hashlib.sha256).hexdigest()
        for candidate in candidates:
            if hmac.compare_digest(candidate.encode("utf-8"), expected.encode("ascii")):
                matched = True
    if not matched:
        raise WebhookVerificationError("bad_signature", "no signature matches the secret")

    # Only now is the body trusted enough to parse.
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError and json.JSONDecodeError
        raise WebhookVerificationError("malformed", "body is not JSON") from None


def delivery_id_of(headers: Any) -> Optional[str]:
    """The delivery id: the de-duplication key, identical on every retry of one delivery.

    ``webhook-id`` is preferred because it is covered by the Standard Webhooks signature;
    ``X-Continuum-Delivery`` carries the same value.
    """
    h = _lower_headers(headers)
    return h.get("webhook-id") or h.get("x-continuum-delivery")


class Deduplicator:
    """Remembers delivery ids for ``ttl_seconds`` so a retried delivery is processed once.

    Delivery is at-least-once: a delivery whose 200 got lost on the way back is sent again, with
    the same delivery id. This in-memory version suits one process and is forgotten on restart.
    In production use shared storage, for example Redis ``SET dedupe:<id> 1 NX EX 86400`` (claimed
    when the reply is OK) or a table with a UNIQUE delivery id inserted in the same transaction as
    your side effects.
    """

    def __init__(self, ttl_seconds: float = 24 * 3600, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._seen: "OrderedDict[str, float]" = OrderedDict()  # id -> expiry, oldest first
        self._lock = threading.Lock()

    def claim(self, delivery_id: str, now: Optional[float] = None) -> bool:
        """True the first time an id is seen (process it); False for a duplicate (skip it)."""
        current = time.monotonic() if now is None else now
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= current:
                self._seen.popitem(last=False)  # expired
            if delivery_id in self._seen:
                return False
            if len(self._seen) >= self._max:
                self._seen.popitem(last=False)  # full: forget the oldest
            self._seen[delivery_id] = current + self._ttl
            return True

    def release(self, delivery_id: str) -> None:
        """Forget an id whose processing failed, so the sender's retry is processed again."""
        with self._lock:
            self._seen.pop(delivery_id, None)


EventHandler = Callable[[Any, str], None]


class WebhookReceiver:
    """Framework-independent request handling shared by the adapters below.

    ``on_event(event, delivery_id)`` runs once per delivery. Keep it fast (CONTINUUM waits at
    most 30 s and retries on a timeout): store the event or put it on a queue, do the work later.
    If it raises, the delivery id is released and the error propagates (your framework answers
    500), so CONTINUUM retries and the retry is processed.
    """

    def __init__(
        self,
        secret: Union[str, Sequence[str]],
        on_event: EventHandler,
        *,
        deduplicator: Optional[Deduplicator] = None,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.on_event = on_event
        self.deduplicator = deduplicator if deduplicator is not None else Deduplicator()
        self.tolerance_seconds = tolerance_seconds
        self.clock = clock  # injectable for tests

    def handle(self, body: bytes, headers: Any) -> Tuple[int, Dict[str, Any]]:
        """Returns (HTTP status, JSON response body)."""
        try:
            event = verify_webhook(
                body, headers, self.secret, tolerance_seconds=self.tolerance_seconds, now=self.clock()
            )
        except WebhookVerificationError as e:
            # 400 tells CONTINUUM not to count on this request; the reason helps you debug.
            return 400, {"error": "invalid_signature", "reason": e.reason, "detail": str(e)}
        delivery_id = delivery_id_of(headers) or ""
        if delivery_id and not self.deduplicator.claim(delivery_id):
            # Already processed: answer 2xx so the sender stops retrying.
            return 200, {"status": "duplicate", "delivery_id": delivery_id}
        try:
            self.on_event(event, delivery_id)
        except Exception:
            if delivery_id:
                self.deduplicator.release(delivery_id)
            raise
        return 200, {"status": "ok", "delivery_id": delivery_id}


# ---------------------------------------------------------------------------------------------
# Framework adapters. Each imports its framework lazily, so this module imports without them.


def flask_view(receiver: WebhookReceiver) -> Callable[[], Any]:
    """A Flask view: ``app.add_url_rule(path, view_func=flask_view(r), methods=["POST"])``."""
    from flask import jsonify, request

    def continuum_webhook() -> Any:
        # get_data() is the raw body. Not request.get_json(): re-encoding changes the bytes.
        status, content = receiver.handle(request.get_data(), request.headers)
        return jsonify(content), status

    return continuum_webhook


def fastapi_router(receiver: WebhookReceiver, path: str = "/webhooks/continuum") -> Any:
    """A FastAPI ``APIRouter`` with ``POST path``: ``app.include_router(fastapi_router(r))``."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse

    router = APIRouter()

    @router.post(path)
    async def continuum_webhook(request: Request) -> JSONResponse:
        body = await request.body()  # raw bytes, before any JSON parsing
        # on_event runs on the event loop here: keep it quick and non-blocking (hand off to a
        # queue or BackgroundTasks), or wrap receiver.handle with starlette's run_in_threadpool.
        status, content = receiver.handle(body, request.headers)
        return JSONResponse(content, status_code=status)

    return router


def django_view(receiver: WebhookReceiver) -> Callable[[Any], Any]:
    """A Django view: ``path("webhooks/continuum", django_view(r))`` in urls.py."""
    from django.http import JsonResponse
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_POST

    @csrf_exempt  # the signature authenticates the sender; it has no CSRF token to send
    @require_POST
    def continuum_webhook(request: Any) -> Any:
        # request.body is the raw bytes; request.headers is case-insensitive.
        status, content = receiver.handle(request.body, request.headers)
        return JsonResponse(content, status=status)

    return continuum_webhook
