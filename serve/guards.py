"""ASGI guard around the app: request size limit, optional API key, request log.

The log line holds method, path, status and latency only: never a body, a query string, a
header or a client address, so no patient data reaches the log. A body over the limit gets 413
whether or not Content-Length was sent: a declared length over it is refused before a byte is
read; a body sent without one (chunked) is read here, up to the limit, then replayed to the app.
With a declared length the app reads the body itself (uvicorn delivers exactly that many bytes).
The key is compared in constant time; `/`, the page's assets, `/healthz` and the API docs stay
open (they hold no patient data), everything under `/v1/` needs the key when one is set.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

LOG = logging.getLogger("medfed.serve.access")
KEY_HEADER = b"x-api-key"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _reply(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, api_key: str | None = None) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, logged_send)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            LOG.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0], elapsed)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"].startswith("/v1/"):
            given = headers.get(KEY_HEADER, b"")
            if not hmac.compare_digest(given, self.api_key):
                await _reply(send, 401, "unauthorized", "missing or wrong X-API-Key header")
                return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _reply(send, 413, "payload_too_large", self._too_large())
            return
        if declared is not None and b"transfer-encoding" not in headers:
            # uvicorn's parser delivers exactly Content-Length bytes: within the limit as checked
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                await _reply(send, 413, "payload_too_large", self._too_large())
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay([b"".join(chunks)], None, receive), send)

    def _too_large(self) -> str:
        return (
            f"request body over {self.max_body_bytes} bytes; send fewer inputs per request "
            "or start the server with a larger --max-body-bytes"
        )


def _replay(bodies: list[bytes], last: Message | None, real: Receive) -> Receive:
    """A `receive` that yields the buffered body once, then waits on the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": False} for body in bodies]
    if last is not None:
        pending.append(last)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await real()

    return receive
