"""The operations endpoints of every service: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz``: the process is alive (200, ``{"status": "ok", …}``); a liveness probe restarts the
  container when it stops answering.
* ``/readyz``: the service can do its work now (200) or not (503). The body is
  ``{"ready": bool, …detail}`` from the service's readiness callback, which says why. While a
  service starts it reports its start-up ``phase`` and, where the phase has one, its progress
  (``{"phase": "loading the knowledge base", "step": "Batches", "done": 12, "total": 27}``):
  whoever waits for it (``dasan.stack.wait_ready``) keeps waiting while that progress advances,
  instead of guessing a deadline for the slowest machine.
* ``/metrics``: the process's Prometheus registry (``streaming.metrics``).

:func:`respond` is the one definition of what the three paths answer. It is served two ways:
:class:`HealthServer`, a small threaded HTTP server (standard library) for services without a web
app of their own (assist, the ASR worker), and :func:`health_router`, the same paths as routes of
a FastAPI app that has one (the ASR gateway).

Readiness of the Kafka connection: :func:`broker_reachable`, with one timeout for every service
(``streaming.probe.BROKER_PROBE_TIMEOUT_S``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from .probe import BROKER_PROBE_TIMEOUT_S, broker_answers
from .settings import KafkaSettings

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
"""() → (ready, detail): ``detail`` goes into the ``/readyz`` body and says why (not) ready."""
Liveness = Callable[[], dict[str, Any]]
"""() → extra fields of the ``/healthz`` body (e.g. open calls)."""
Route = Callable[[dict[str, list[str]]], tuple[int, dict[str, Any]]]
"""An extra internal ``GET`` endpoint: (parsed query string) → (status code, JSON body). For the
loopback-only internal API of a service (the assist service's ``/internal/search``)."""

JSON = "application/json"
PATHS = ("/healthz", "/readyz", "/metrics")


def broker_reachable(kafka: KafkaSettings) -> bool:
    """A bootstrap server answers a Kafka request within ``BROKER_PROBE_TIMEOUT_S`` (a TCP connect
    alone succeeds against a hung broker: see ``streaming.probe``)."""
    return broker_answers(kafka, BROKER_PROBE_TIMEOUT_S)


def respond(path: str, ready: Readiness, alive: Liveness | None = None) -> tuple[int, bytes, str]:
    """(status code, body, content type) of ``GET path``; 404 for anything but :data:`PATHS`."""
    if path == "/healthz":
        return 200, _json({"status": "ok", **(alive() if alive else {})}), JSON
    if path == "/readyz":
        ok, detail = ready()
        return (200 if ok else 503), _json({"ready": ok, **detail}), JSON
    if path == "/metrics":
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return 200, generate_latest(), CONTENT_TYPE_LATEST
    return 404, _json({"error": "not found"}), JSON


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, default=str).encode()


class HealthServer:
    """The endpoints on their own port, served from a daemon thread (``port=0``: a free port)."""

    def __init__(
        self,
        host: str,
        port: int,
        ready: Readiness,
        alive: Liveness | None = None,
        routes: dict[str, Route] | None = None,
    ) -> None:
        """``routes``: extra ``GET`` paths (the query string is never logged: it may carry what a
        counselor typed)."""
        extra = dict(routes or {})

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the service logs as JSON
                return

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path in extra:
                    try:
                        status, payload = extra[path](parse_qs(query, keep_blank_values=False))
                    except Exception as exc:  # a bug in a route must not kill the health thread
                        status, payload = 500, {"error": type(exc).__name__}
                    code, body, ctype = status, _json(payload), JSON
                else:
                    code, body, ctype = respond(path, ready, alive)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # a prober that gave up (timeout) before the answer: nothing to report
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def health_router(ready: Readiness, alive: Liveness | None = None) -> Any:
    """The endpoints as a FastAPI ``APIRouter`` (for a service that already serves a FastAPI app)."""
    from fastapi import APIRouter, Response

    def endpoint(path: str) -> Callable[[], Response]:
        def get() -> Response:
            code, body, ctype = respond(path, ready, alive)
            return Response(body, status_code=code, media_type=ctype)

        return get

    router = APIRouter(tags=["ops"])
    for path in PATHS:
        router.add_api_route(path, endpoint(path), methods=["GET"])
    return router
