"""Refuse an oversized request body before Django reads it.

Django's ASGI handler reads the whole body into a temporary file (on disk past 2.5 MB)
before any view or parser runs, so DATA_UPLOAD_MAX_MEMORY_SIZE alone would still let an
anonymous client fill the disk. This wrapper answers 413 from the Content-Length header,
and stops a body that has no such header (or lies in it) once it passes the bound.
"""

from __future__ import annotations

import json
from typing import Any

from core.api.errors import too_large_detail

Scope = dict[str, Any]


class BodyLimit:
    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if _declared_length(scope) > self.limit:
            return await _answer_413(send)
        received, overflowed, started = 0, False, False

        async def bounded_receive() -> dict[str, Any]:
            nonlocal received, overflowed
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                overflowed = True
                return {"type": "http.disconnect"}  # Django stops reading and answers nothing
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        await self.app(scope, bounded_receive, tracking_send)
        if overflowed and not started:
            await _answer_413(send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


async def _answer_413(send: Any) -> None:
    body = json.dumps({"detail": too_large_detail(), "errors": {}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
