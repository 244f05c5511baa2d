"""Tests for verify_webhook.py (and the complete receiver in fastapi_receiver/main.py).

    python3 -m unittest examples/test_verify_webhook.py

Every verifier here must accept every positive vector of docs/test-vectors.json (with either
secret of a rotation, with either header family alone and with both) and reject every negative
vector with the expected reason. The framework adapters get the same vectors through each
framework's own test client. Suites whose framework is not installed are skipped (Debian:
python3-flask, python3-fastapi + python3-httpx, python3-django).

At the end the suite prints one line per verifier, e.g.
``continuum test vectors [python]: 24 positive accepted, 25 negative rejected``.
"""

import importlib.util
import json
import os
import subprocess
import sys
import unittest
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import verify_webhook as vw  # noqa: E402

VECTORS = json.loads((HERE.parent / "docs" / "test-vectors.json").read_text(encoding="utf-8"))
POSITIVE: List[Dict[str, Any]] = VECTORS["positive"]
NEGATIVE: List[Dict[str, Any]] = VECTORS["negative"]
WEBHOOK_PATH = "/webhooks/continuum"

STANDARD = {"webhook-id", "webhook-timestamp", "webhook-signature"}
CONTINUUM = {"x-continuum-timestamp", "x-continuum-signature"}

# label -> [positive vectors accepted, negative vectors rejected]; printed at the end.
COUNTS: Dict[str, List[int]] = {}


def count(label: str, index: int) -> None:
    COUNTS.setdefault(label, [0, 0])[index] += 1


def tearDownModule() -> None:
    for label, (positive, negative) in COUNTS.items():
        print(
            f"continuum test vectors [{label}]: {positive} positive accepted, {negative} negative rejected",
            flush=True,
        )


def without(headers: Dict[str, str], names: set) -> Dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in names}


def header_variants(v: Dict[str, Any]) -> List[Tuple[str, Dict[str, str]]]:
    return [
        ("X-Continuum-* only", without(v["headers"], STANDARD)),
        ("webhook-* only", without(v["headers"], CONTINUUM)),
        ("both families", dict(v["headers"])),
    ]


def secrets_of(v: Dict[str, Any]) -> List[str]:
    return [v["secret"]] + ([v["previous_secret"]] if "previous_secret" in v else [])


Verify = Callable[[bytes, Dict[str, str], List[str], int], Any]


class VectorChecks:
    """Runs all vectors through `verify(body, headers, secrets, now)`; mixed into test cases."""

    label = ""

    def error_type(self) -> type:
        return vw.WebhookVerificationError

    def verify(self, body: bytes, headers: Dict[str, str], secrets: List[str], now: int) -> Any:
        raise NotImplementedError

    def test_accepts_every_positive_vector(self) -> None:
        for v in POSITIVE:
            with self.subTest(vector=v["name"]):
                body = v["body"].encode("utf-8")
                for secret in secrets_of(v):
                    for family, headers in header_variants(v):
                        payload = self.verify(body, headers, [secret], v["now"])
                        self.assertEqual(payload, v["payload"], f"{family}, {secret[:10]}")
                # The receiver's own rotation: a list of secrets where only one is right.
                other = "whsec_" + "A" * 43 + "="
                self.assertEqual(self.verify(body, v["headers"], [other, v["secret"]], v["now"]), v["payload"])
                count(self.label, 0)

    def test_rejects_every_negative_vector_with_its_reason(self) -> None:
        for v in NEGATIVE:
            with self.subTest(vector=v["name"]):
                with self.assertRaises(self.error_type()) as caught:
                    self.verify(v["body"].encode("utf-8"), v["headers"], [v["secret"]], v["now"])
                self.assertEqual(caught.exception.reason, v["reason"])
                count(self.label, 1)


class VerifyWebhookVectors(VectorChecks, unittest.TestCase):
    label = "python"

    def verify(self, body: bytes, headers: Dict[str, str], secrets: List[str], now: int) -> Any:
        return vw.verify_webhook(body, headers, secrets, now=now)


class VerifyWebhookBehaviour(unittest.TestCase):
    def setUp(self) -> None:
        self.v = POSITIVE[0]

    def test_accepts_str_body_and_single_secret(self) -> None:
        v = self.v
        self.assertEqual(vw.verify_webhook(v["body"], v["headers"], v["secret"], now=v["now"]), v["payload"])

    def test_uses_the_clock_by_default(self) -> None:
        v = self.v  # signed in 2026-01-01, far outside the window of any later wall clock
        with self.assertRaises(vw.WebhookVerificationError) as caught:
            vw.verify_webhook(v["body"], v["headers"], v["secret"], now=v["timestamp"] + 301)
        self.assertEqual(caught.exception.reason, "expired")

    def test_refuses_to_run_without_a_secret(self) -> None:
        with self.assertRaises(TypeError):
            vw.verify_webhook(self.v["body"], self.v["headers"], [], now=self.v["now"])

    def test_refuses_a_secret_that_is_not_base64(self) -> None:
        # Never an HMAC keyed by b"": anybody could forge that.
        with self.assertRaises(ValueError):
            vw.verify_webhook(self.v["body"], self.v["headers"], "whsec_!!!", now=self.v["now"])

    def test_a_duplicated_header_counts_both_values(self) -> None:
        v = self.v
        pairs = [(k, x) for k, x in v["headers"].items() if k != "webhook-signature"]
        pairs += [("webhook-signature", "v1,AAAA"), ("webhook-signature", v["headers"]["webhook-signature"])]
        self.assertEqual(vw.verify_webhook(v["body"], pairs, v["secret"], now=v["now"]), v["payload"])

    def test_the_core_imports_no_framework(self) -> None:
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import verify_webhook; "
            "print(sorted(m for m in ('flask', 'fastapi', 'starlette', 'django') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code, str(HERE)], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]")

    def test_delivery_id_prefers_the_signed_webhook_id(self) -> None:
        self.assertEqual(vw.delivery_id_of({"Webhook-Id": "a", "X-Continuum-Delivery": "b"}), "a")
        self.assertEqual(vw.delivery_id_of({"X-Continuum-Delivery": "b"}), "b")
        self.assertIsNone(vw.delivery_id_of({}))


class DeduplicatorTests(unittest.TestCase):
    def test_claims_once_within_the_ttl(self) -> None:
        d = vw.Deduplicator(ttl_seconds=10)
        self.assertTrue(d.claim("dlv_1", now=0))
        self.assertFalse(d.claim("dlv_1", now=9))
        self.assertTrue(d.claim("dlv_2", now=9))
        self.assertTrue(d.claim("dlv_1", now=10.5))  # expired: seen as new again

    def test_release_forgets_an_id(self) -> None:
        d = vw.Deduplicator()
        self.assertTrue(d.claim("dlv_1"))
        d.release("dlv_1")
        self.assertTrue(d.claim("dlv_1"))

    def test_bounded_size_drops_the_oldest(self) -> None:
        d = vw.Deduplicator(max_entries=2)
        for i in range(3):
            self.assertTrue(d.claim(f"dlv_{i}", now=0))
        self.assertFalse(d.claim("dlv_2", now=0))
        self.assertTrue(d.claim("dlv_0", now=0))  # the oldest was dropped to make room


# ---------------------------------------------------------------------------------------------
# Framework adapters, through each framework's own test client


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class AdapterChecks(VectorChecks):
    """The same vectors over HTTP, plus de-duplication and failure handling.

    Subclasses build `self.post(body, headers) -> (status, json)` around `self.receiver`.
    """

    def setUp(self) -> None:
        self.now = 0
        self.calls: List[Tuple[Any, str]] = []
        self.fail_next = False

        def on_event(event: Any, delivery_id: str) -> None:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("handler failed")
            self.calls.append((event, delivery_id))

        self.receiver = vw.WebhookReceiver("unset", on_event, clock=lambda: self.now)
        self.make_client()

    def make_client(self) -> None:
        raise NotImplementedError

    def post(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
        raise NotImplementedError

    def verify(self, body: bytes, headers: Dict[str, str], secrets: List[str], now: int) -> Any:
        self.receiver.secret = secrets
        self.receiver.deduplicator = vw.Deduplicator()  # vectors reuse ids across families
        self.now = now
        self.calls.clear()
        status, content = self.post(body, headers)
        if status == 400:
            raise vw.WebhookVerificationError(content["reason"], content.get("detail", ""))
        self.assertEqual((status, content["status"]), (200, "ok"))
        self.assertEqual(len(self.calls), 1)
        event, delivery_id = self.calls[0]
        self.assertEqual(delivery_id, headers.get("webhook-id") or headers.get("X-Continuum-Delivery"))
        return event

    def test_a_retried_delivery_is_processed_once(self) -> None:
        v = POSITIVE[0]
        self.receiver.secret, self.now = v["secret"], v["now"]
        body = v["body"].encode("utf-8")
        self.assertEqual(self.post(body, v["headers"]), (200, {"status": "ok", "delivery_id": v["delivery_id"]}))
        status, content = self.post(body, without(v["headers"], STANDARD))  # same id, other family
        self.assertEqual((status, content["status"]), (200, "duplicate"))
        self.assertEqual(len(self.calls), 1)

    def test_a_failed_handler_answers_500_and_the_retry_is_processed(self) -> None:
        v = POSITIVE[1]
        self.receiver.secret, self.now = v["secret"], v["now"]
        body = v["body"].encode("utf-8")
        self.fail_next = True
        self.assertEqual(self.post_expecting_error(body, v["headers"]), 500)
        self.assertEqual(self.post(body, v["headers"])[0], 200)
        self.assertEqual([d for _, d in self.calls], [v["delivery_id"]])

    def post_expecting_error(self, body: bytes, headers: Dict[str, str]) -> int:
        return self.post(body, headers)[0]


@unittest.skipUnless(available("flask"), "Flask is not installed (Debian: python3-flask)")
class FlaskAdapter(AdapterChecks, unittest.TestCase):
    label = "flask"

    def make_client(self) -> None:
        from flask import Flask

        app = Flask(__name__)
        app.logger.disabled = True  # the failing-handler test would print its traceback
        app.add_url_rule(WEBHOOK_PATH, view_func=vw.flask_view(self.receiver), methods=["POST"])
        self.client = app.test_client()

    def post(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
        response = self.client.post(WEBHOOK_PATH, data=body, headers=headers)
        return response.status_code, response.get_json(silent=True)

    def test_only_post_is_routed(self) -> None:
        self.assertEqual(self.client.get(WEBHOOK_PATH).status_code, 405)


@unittest.skipUnless(
    available("fastapi") and available("httpx"),
    "FastAPI or httpx is not installed (Debian: python3-fastapi python3-httpx)",
)
class FastAPIAdapter(AdapterChecks, unittest.TestCase):
    label = "fastapi"

    def make_client(self) -> None:
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        app = FastAPI()
        app.include_router(vw.fastapi_router(self.receiver, WEBHOOK_PATH))
        self.client = TestClient(app, raise_server_exceptions=False)

    def post(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
        response = self.client.post(WEBHOOK_PATH, content=body, headers=headers)
        try:
            return response.status_code, response.json()
        except ValueError:  # Starlette's plain-text 500 page
            return response.status_code, None

    def test_only_post_is_routed(self) -> None:
        self.assertEqual(self.client.get(WEBHOOK_PATH).status_code, 405)


_django_ready: Optional[bool] = None


def django_ready() -> bool:
    """Minimal settings, configured once per process (Django allows nothing else)."""
    global _django_ready
    if _django_ready is None:
        _django_ready = available("django")
        if _django_ready:
            # Django 3.2 on Python 3.11 warns about its own use of locale.getdefaultlocale().
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"django\.")
            import django
            from django.conf import settings

            if not settings.configured:
                settings.configure(
                    DEBUG=False,
                    SECRET_KEY="test-only",
                    ALLOWED_HOSTS=["testserver"],
                    INSTALLED_APPS=[],
                    MIDDLEWARE=[],
                    USE_TZ=True,
                )
                django.setup()
    return _django_ready


@unittest.skipUnless(available("django"), "Django is not installed (Debian: python3-django)")
class DjangoAdapter(AdapterChecks, unittest.TestCase):
    label = "django"

    def make_client(self) -> None:
        self.assertTrue(django_ready())
        from django.test import RequestFactory

        self.factory = RequestFactory()
        self.view = vw.django_view(self.receiver)

    @staticmethod
    def meta(headers: Dict[str, str]) -> Dict[str, str]:
        # How a WSGI server hands headers to Django: HTTP_ + upper case, dashes as underscores.
        return {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k.lower() != "content-type"}

    def post(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, Any]:
        request = self.factory.post(WEBHOOK_PATH, data=body, content_type="application/json", **self.meta(headers))
        response = self.view(request)
        return response.status_code, json.loads(response.content)

    def post_expecting_error(self, body: bytes, headers: Dict[str, str]) -> int:
        # Called directly, a view's exception propagates; Django's handler would answer 500.
        with self.assertRaises(RuntimeError):
            self.post(body, headers)
        return 500

    def test_only_post_is_routed(self) -> None:
        self.assertEqual(self.view(self.factory.get(WEBHOOK_PATH)).status_code, 405)


# ---------------------------------------------------------------------------------------------
# The complete receiver in fastapi_receiver/main.py carries its own (condensed) verifier.


@unittest.skipUnless(available("fastapi"), "FastAPI is not installed (Debian: python3-fastapi)")
class FastAPIReceiverVectors(VectorChecks, unittest.TestCase):
    label = "fastapi_receiver"

    @classmethod
    def setUpClass(cls) -> None:
        os.environ.setdefault("CONTINUUM_WEBHOOK_SECRET", POSITIVE[0]["secret"])
        spec = importlib.util.spec_from_file_location("continuum_fastapi_receiver", HERE / "fastapi_receiver" / "main.py")
        assert spec is not None and spec.loader is not None
        cls.main = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.main)

    def error_type(self) -> type:
        return self.main.WebhookVerificationError

    def verify(self, body: bytes, headers: Dict[str, str], secrets: List[str], now: int) -> Any:
        return self.main.verify_webhook(body, headers, secrets, now=now)


if __name__ == "__main__":
    unittest.main()
