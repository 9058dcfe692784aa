"""Responses read with a byte cap and a total deadline.

httpx's timeout bounds each read, not the whole body: an upstream that keeps sending (a runaway
query, a hostile server) would otherwise be read into memory for as long as it sends.
"""

from __future__ import annotations

import asyncio

import httpx

# Headers that described the body as sent; the body we return is already decoded.
_TRANSPORT_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class ResponseTooLarge(Exception):
    def __init__(self, url: str, limit: int) -> None:
        super().__init__(f"the answer of {url} exceeded {limit} bytes and was cut off")
        self.url = url
        self.limit = limit


async def send_bounded(
    client: httpx.AsyncClient, request: httpx.Request, *, max_bytes: int, deadline: float
) -> httpx.Response:
    """Send ``request`` and read the whole (decoded) body, at most ``max_bytes`` of it, within
    ``deadline`` seconds (``TimeoutError`` past it; ``ResponseTooLarge`` past the cap)."""
    async with asyncio.timeout(deadline):
        streamed = await client.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in streamed.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(str(request.url), max_bytes)
        finally:
            await streamed.aclose()
    headers = [
        (name, value)
        for name, value in streamed.headers.multi_items()
        if name.lower() not in _TRANSPORT_HEADERS
    ]
    return httpx.Response(
        streamed.status_code, headers=headers, content=bytes(body), request=streamed.request
    )
