"""GitHub webhook protocol, without I/O: signature check on the raw body, then parsing.

The signature is ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` (GitHub docs,
"Validating webhook deliveries"); it is compared in constant time before the body is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bot.errors import InvalidSignature, SecreviewError

SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"


class BadDelivery(SecreviewError):
    """A signed delivery that is not a usable webhook (missing headers, malformed JSON)."""

    reason = "bad_delivery"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified webhook delivery."""

    event: str
    delivery_id: str
    payload: Mapping[str, Any]

    @property
    def action(self) -> str:
        """The payload's ``action`` ("" for events without one, such as ``push``)."""
        action = self.payload.get("action")
        return action if isinstance(action, str) else ""


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.digest(secret.encode(), body, hashlib.sha256).hex()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise InvalidSignature unless ``header`` signs ``body`` with ``secret``."""
    if not header:
        raise InvalidSignature("missing X-Hub-Signature-256 header")
    if not header.startswith("sha256="):
        raise InvalidSignature("X-Hub-Signature-256 must start with sha256=")
    if not hmac.compare_digest(signature(secret, body).encode(), header.strip().encode()):
        raise InvalidSignature("X-Hub-Signature-256 does not match the body")


def parse(headers: Mapping[str, str], body: bytes) -> Delivery:
    """The delivery in an already verified request; BadDelivery when it is unusable."""
    event = headers.get(EVENT_HEADER, "").strip()
    delivery_id = headers.get(DELIVERY_HEADER, "").strip()
    if not event:
        raise BadDelivery("missing X-GitHub-Event header")
    if not delivery_id or len(delivery_id) > 100:
        raise BadDelivery("missing or oversized X-GitHub-Delivery header")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadDelivery("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadDelivery("body is not a JSON object")
    return Delivery(event, delivery_id, payload)
