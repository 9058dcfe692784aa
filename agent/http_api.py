"""The agent's HTTP endpoints: /metrics, /healthz, /readyz and the JSON API under /api/v1.

A thread-per-connection server from the standard library, as prometheus_client's own
``start_http_server`` uses: a slow client holds one thread, never the collectors. Only GET
(and HEAD) on the documented routes; everything else is 404 or 405.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from agent.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition
from agent.store import Store

log = logging.getLogger(__name__)

JsonView = Callable[[], Any]


class AgentHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        exposition: Exposition,
        store: Store,
        api: Mapping[str, JsonView],
    ) -> None:
        self.exposition = exposition
        self.store = store
        self.api = dict(api)
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        return f"http://{shown}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="agent-http", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: AgentHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "inferwatch-agent"
    sys_version = ""
    timeout = 15  # a client that stops sending loses its thread after this long
    # Headers and body go out in two writes: with Nagle's algorithm and the client's delayed ACK
    # the body waited ~40 ms on every small response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._route(send_body=False)

    def _refuse(self) -> None:
        self._send(
            405, b"method not allowed\n", "text/plain; charset=utf-8", True, {"Allow": "GET, HEAD"}
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _route(self, send_body: bool) -> None:
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # never read a request body: none of our routes takes one
            self._send(
                413, b"request bodies are not accepted\n", "text/plain; charset=utf-8", send_body
            )
            return
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics(send_body)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8", send_body)
        elif path == "/readyz":
            ready = self.server.store.ready
            body = b"ready\n" if ready else b"waiting for the first poll of every source\n"
            self._send(200 if ready else 503, body, "text/plain; charset=utf-8", send_body)
        elif path in self.server.api:
            self._json(self.server.api[path], send_body)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", send_body)

    def _metrics(self, send_body: bool) -> None:
        page = self.server.exposition.page
        accept = self.headers.get("Accept", "")
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        body: bytes | tuple[bytes, ...]
        if "application/openmetrics-text" in accept:
            body = page.openmetrics_gzip if gzipped else page.openmetrics_parts
            content_type = OPENMETRICS_CONTENT_TYPE
        else:
            body, content_type = (page.text_gzip if gzipped else page.text_parts), TEXT_CONTENT_TYPE
        extra = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzipped else {}
        self._send(200, body, content_type, send_body, extra)

    def _json(self, view: JsonView, send_body: bool) -> None:
        try:
            body = json.dumps(view(), separators=(",", ":"), default=str).encode()
        except Exception:
            log.exception("JSON view %s failed", self.path)
            self._send(500, b'{"error":"internal error"}', "application/json", send_body)
            return
        self._send(200, body, "application/json", send_body)

    def _send(
        self,
        status: int,
        body: bytes | tuple[bytes, ...],
        content_type: str,
        send_body: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        parts = (body,) if isinstance(body, bytes) else body
        self.send_header("Content-Length", str(sum(map(len, parts))))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            for part in parts:
                self.wfile.write(part)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
