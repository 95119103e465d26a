"""The webhook receiver: verify, dedupe, route and enqueue in milliseconds; nothing slow here.

POST /api/github/webhooks   401 bad signature · 413 over 25 MB · 400 malformed · 200 ping
                            202 queued (or a redelivery) · 204 nothing to do · 503 no Redis
GET  /healthz               the process is up
GET  /readyz                Redis answers
GET  /metrics               Prometheus text
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot.config import Settings
from bot.errors import InvalidSignature
from bot.github import webhooks
from bot.github.routing import RouteContext, router
from bot.metrics import SHARED_KEY, Registry
from bot.queue import Producer

log = logging.getLogger("secreview.web")

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
WEBHOOK_PATH = "/api/github/webhooks"


class BodyTooLarge(Exception):
    """The request body passed MAX_BODY_BYTES."""


Reply = tuple[int, dict[str, Any] | None]


async def read_body(receive: Receive, declared: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused early (by Content-Length) or while streaming past ``limit``."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


_WANTED_HEADERS = frozenset(
    {b"content-length", b"x-hub-signature-256", b"x-github-event", b"x-github-delivery"}
)


async def _send_json(send: Send, status: int, payload: dict[str, Any] | None) -> None:
    body = b"" if payload is None else orjson.dumps(payload)
    headers = [(b"content-length", str(len(body)).encode())]
    if payload is not None:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WebhookEndpoint:
    """``POST /api/github/webhooks`` as a plain ASGI app: this path is the hot one."""

    def __init__(self, secret: str, producer: Producer, metrics: Registry, ctx: RouteContext):
        self.secret = secret
        self.producer = producer
        self.metrics = metrics
        self.context = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _WANTED_HEADERS
        }
        payload: dict[str, Any] | None
        if scope.get("method") != "POST":
            status, payload = 405, {"error": "POST only"}
        else:
            status, payload = await self.handle(headers, receive)
        await _send_json(send, status, payload)
        self.metrics.observe(time.perf_counter() - started)

    def _problem(self, status: int, reason: str, outcome: str) -> Reply:
        self.metrics.incr("secreview_webhooks_total", {"outcome": outcome})
        return status, {"error": reason}

    async def handle(self, headers: Mapping[str, str], receive: Receive) -> Reply:
        """Verify, parse, route and enqueue one delivery; the status and JSON to answer."""
        try:
            body = await read_body(receive, headers.get("content-length"))
        except BodyTooLarge:
            return self._problem(413, "payload over 25 MB", "too_large")
        try:
            webhooks.verify_signature(self.secret, body, headers.get("x-hub-signature-256"))
        except InvalidSignature as exc:
            return self._problem(401, str(exc), "bad_signature")
        try:
            delivery = webhooks.parse(headers, body)
        except webhooks.BadDelivery as exc:
            return self._problem(400, str(exc), "malformed")
        if delivery.event == "ping":
            self.metrics.incr("secreview_webhooks_total", {"outcome": "ping"})
            return 200, {"ok": True, "zen": delivery.payload.get("zen", "")}
        try:
            routed = router.route(delivery, self.context)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # Signed, parsed, but not the shape GitHub sends for this event: say so, never 500.
            log.warning(
                "delivery %s: malformed %s payload (%s)",
                delivery.delivery_id,
                delivery.event,
                type(exc).__name__,
            )
            return self._problem(400, f"malformed {delivery.event} payload", "malformed")
        ident = (delivery.delivery_id, delivery.event, delivery.action)
        if not routed.jobs:
            log.info("delivery %s %s.%s: %s", *ident, routed.note)
            self.metrics.incr("secreview_webhooks_total", {"outcome": "ignored"})
            return 204, None
        try:
            new = await self.producer.enqueue(delivery.delivery_id, routed.jobs, delivery.event)
        except (RedisError, OSError) as exc:
            log.error(
                "delivery %s not queued: Redis unavailable (%s)", ident[0], type(exc).__name__
            )
            return self._problem(503, "queue unavailable, redeliver later", "unavailable")
        outcome = "queued" if new else "duplicate"
        self.metrics.incr("secreview_webhooks_total", {"outcome": outcome})
        tasks = [job.task for job in routed.jobs]
        log.info("delivery %s %s.%s: %s %s", *ident, outcome, ",".join(tasks))
        return 202, {"queued": tasks if new else [], "duplicate": not new}


def create_app(settings: Settings, *, redis_client: aioredis.Redis | None = None) -> Receiver:
    """The receiver for ``settings``; ConfigError when no webhook secret is set."""
    secret = settings.require_webhook_secret()
    if redis_client is None:
        from bot.redis_client import connect_async

        redis_client = connect_async(settings.redis_url)
    client = redis_client
    metrics = Registry()
    webhook = WebhookEndpoint(
        secret, Producer(client), metrics, RouteContext(app_id=settings.github_app_id)
    )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        try:
            await client.ping()
        except (RedisError, OSError):
            return PlainTextResponse("redis unavailable\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics_endpoint(request: Request) -> Response:
        shared: dict[Any, Any] = {}
        # Without Redis the receiver's own figures are still worth serving.
        with contextlib.suppress(RedisError, OSError):
            pending: Any = client.hgetall(SHARED_KEY)  # typed sync-or-async by some redis-py
            shared = await pending
        return PlainTextResponse(
            metrics.render(shared), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
    )
    app.state.metrics = metrics
    app.state.redis = client
    return Receiver(app, webhook)


class Receiver:
    """The ASGI app: webhook deliveries go straight to their endpoint, the rest to Starlette.

    Deliveries are the only traffic that matters for throughput; skipping the general routing and
    middleware stack for them is measurable at thousands of deliveries per second.
    """

    def __init__(self, app: Starlette, webhook: WebhookEndpoint) -> None:
        self.app = app
        self.webhook = webhook
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH:
            try:
                await self.webhook(scope, receive, send)
            except Exception:  # the receiver's boundary: log it, answer 500, stay up
                log.exception("webhook handler failed")
                await _send_json(send, 500, {"error": "internal error"})
            return
        await self.app(scope, receive, send)
