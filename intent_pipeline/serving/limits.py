"""ASGI middleware in front of the API: bearer-token auth and the request body size limit.

Both act before any parsing: an unauthenticated request is refused without its body being read, a
body whose Content-Length is over the limit is refused at once (413), and a body sent without a
length (chunked) is counted while it streams in and refused as soon as it passes the limit.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_METHODS = {"POST", "PUT", "PATCH"}


async def send_json(send: Send, status: int, body: dict, headers: Iterable[tuple[str, str]] = ()) -> None:
    payload = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def token_matches(header: bytes, token: str) -> bool:
    """Is `header` (the Authorization value) `Bearer <token>`? Constant-time in the token's content."""
    return hmac.compare_digest(header, b"Bearer " + token.encode("utf-8"))


class RequestLimits:
    """Refuse requests without the bearer token (when one is set) and bodies over `max_body_bytes`."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, api_token: str = "",
                 open_paths: Iterable[str] = ("/health",)) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_token = api_token
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.api_token and scope.get("path") not in self.open_paths:
            if not token_matches(headers.get(b"authorization", b""), self.api_token):
                await send_json(send, 401, {"error": "missing or wrong bearer token (Authorization: Bearer <API_TOKEN>)"},
                                [("WWW-Authenticate", "Bearer")])
                return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await send_json(send, 400, {"error": "Content-Length is not a number"})
                return
            if int(length) > self.max_body_bytes:
                await self._too_large(send)
                return
        if scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            await self._too_large(send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it grows past the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away: let the app see the disconnect
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, {"error": f"request body is larger than {self.max_body_bytes} bytes (MAX_BODY_BYTES)"},
                        [("Connection", "close")])


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
