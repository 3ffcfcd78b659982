"""``/healthz``, ``/readyz`` and ``/metrics`` on a small threaded HTTP server (standard library)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class HealthServer:
    def __init__(self, host: str, port: int, ready: Callable[[], tuple[bool, dict[str, object]]]) -> None:
        ready_fn = ready

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the service logs as JSON
                return

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # a prober that gave up (timeout) before the answer: nothing to report
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, b'{"status":"ok"}', "application/json")
                elif self.path == "/readyz":
                    ok, detail = ready_fn()
                    body = json.dumps({"ready": ok, **detail}, ensure_ascii=False).encode()
                    self._send(200 if ok else 503, body, "application/json")
                elif self.path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b'{"error":"not found"}', "application/json")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="assist-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
