"""ASGI middleware that answers before FastAPI reads a body: the API key first, then the body size limit."""

import hmac
import json


class BodyLimit:
    """ASGI middleware: a body above the limit gets 413 before it is read whole (Content-Length or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._refuse(send)
        seen = 0
        refused = False

        async def limited_receive():
            # Past the limit: answer 413 ourselves, tell the app the client left, drop what it sends.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg):
            if not refused:
                await send(msg)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send) -> None:
        await send_error(send, 413, f"request body exceeds {self.max_bytes} bytes", "invalid_request_error",
                         "body_too_large", [(b"connection", b"close")])


async def send_error(send, status: int, message: str, type_: str, code: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """An error in the API's one shape, sent from ASGI middleware (before FastAPI has the request)."""
    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


OPEN_PATHS = ("/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
KEY_MESSAGE = "missing or invalid API key (Authorization: Bearer KEY or X-API-Key: KEY)"


def key_matches(headers, api_key: str) -> bool:
    """``Authorization: Bearer KEY`` (scheme in any case) or ``X-API-Key: KEY``, compared in constant time."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" and token.strip() else headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), api_key.encode("utf-8", "surrogatepass"))


class KeyFirst:
    """ASGI middleware: the API key is checked before the body is read or validated, so that a caller
    without the key learns nothing about the body (401, not 422) and costs no parsing."""

    def __init__(self, app, api_key: str | None, open_paths: tuple[str, ...]) -> None:
        self.app, self.api_key, self.open_paths = app, api_key, open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.api_key is None or scope.get("path", "") in self.open_paths:
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        if key_matches(Headers(scope=scope), self.api_key):
            return await self.app(scope, receive, send)
        await send_error(send, 401, KEY_MESSAGE, "authentication_error", "invalid_api_key",
                         [(b"www-authenticate", b"Bearer")])
