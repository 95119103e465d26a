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
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import webhooks
from bot.config import Settings
from bot.errors import InvalidSignature
from bot.metrics import SHARED_KEY, Registry
from bot.routing import RouteContext, router
from workers.producer import Producer

log = logging.getLogger("secreview.web")

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


class BodyTooLarge(Exception):
    """The request body passed MAX_BODY_BYTES."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing early (by Content-Length) or while streaming past ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(status: int, reason: str, metrics: Registry, outcome: str) -> JSONResponse:
    metrics.incr("secreview_webhooks_total", {"outcome": outcome})
    return JSONResponse({"error": reason}, status_code=status)


def create_app(settings: Settings, *, redis_client: aioredis.Redis | None = None) -> Starlette:
    """The receiver for ``settings``; ConfigError when no webhook secret is set."""
    secret = settings.require_webhook_secret()
    client = redis_client or aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=2
    )
    producer = Producer(client)
    metrics = Registry()
    context = RouteContext(app_id=settings.github_app_id)

    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await _handle(request)
        finally:
            metrics.observe(time.perf_counter() - started)

    async def _handle(request: Request) -> Response:
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return _problem(413, "payload over 25 MB", metrics, "too_large")
        try:
            webhooks.verify_signature(secret, body, request.headers.get("x-hub-signature-256"))
        except InvalidSignature as exc:
            return _problem(401, str(exc), metrics, "bad_signature")
        try:
            delivery = webhooks.parse(request.headers, body)
        except webhooks.BadDelivery as exc:
            return _problem(400, str(exc), metrics, "malformed")
        if delivery.event == "ping":
            metrics.incr("secreview_webhooks_total", {"outcome": "ping"})
            return JSONResponse({"ok": True, "zen": delivery.payload.get("zen", "")})
        routed = router.route(delivery, context)
        if not routed.jobs:
            log.info(
                "delivery %s %s.%s: %s",
                delivery.delivery_id,
                delivery.event,
                delivery.action,
                routed.note,
            )
            metrics.incr("secreview_webhooks_total", {"outcome": "ignored"})
            return Response(status_code=204)
        try:
            new = await producer.enqueue(delivery.delivery_id, routed.jobs, delivery.event)
        except (RedisError, OSError) as exc:
            log.error(
                "delivery %s not queued: Redis unavailable (%s)",
                delivery.delivery_id,
                type(exc).__name__,
            )
            return _problem(503, "queue unavailable, redeliver later", metrics, "unavailable")
        outcome = "queued" if new else "duplicate"
        metrics.incr("secreview_webhooks_total", {"outcome": outcome})
        tasks = [job.task for job in routed.jobs]
        log.info(
            "delivery %s %s.%s: %s %s",
            delivery.delivery_id,
            delivery.event,
            delivery.action,
            outcome,
            ",".join(tasks),
        )
        return JSONResponse({"queued": tasks if new else [], "duplicate": not new}, status_code=202)

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
            shared = await client.hgetall(SHARED_KEY)
        return PlainTextResponse(
            metrics.render(shared), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    app = Starlette(
        routes=[
            Route("/api/github/webhooks", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
    )
    app.state.metrics = metrics
    app.state.redis = client
    return app
