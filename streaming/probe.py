"""Readiness probe of the Kafka cluster: does a broker *answer*, not just accept a TCP connection?

A hung broker (stopped process, full request queue, a load balancer with nothing behind it) still
completes TCP handshakes: the kernel accepts connections into the listen backlog. A probe that only
connects would report it as reachable while every produce and fetch times out. This probe sends a
Kafka ``ApiVersions`` request (v0: allowed before SASL authentication, answered by every broker
version) and waits for the matching response, over TLS when the settings ask for it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct

from .settings import KafkaSettings

API_VERSIONS = 18
_CORRELATION_ID = 0x0DA5A

# How long one bootstrap server may take to answer before it counts as away. A broker answers
# ApiVersions in milliseconds; one second leaves room for a loaded broker and keeps a readiness
# check well inside the probes' 3 s timeout (infra/k8s, infra/compose). Every readiness check
# (streaming.health.broker_reachable, and callers of this function) uses it.
BROKER_PROBE_TIMEOUT_S = 1.0


def _request(client_id: str) -> bytes:
    cid = client_id.encode()[:200]
    body = struct.pack(">hhih", API_VERSIONS, 0, _CORRELATION_ID, len(cid)) + cid
    return struct.pack(">i", len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def _tls_context(settings: KafkaSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.ssl_cafile)
    ctx.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return ctx


def broker_answers(settings: KafkaSettings, timeout_s: float = BROKER_PROBE_TIMEOUT_S) -> bool:
    """True if any bootstrap server answers an ApiVersions request within ``timeout_s``."""
    tls = settings.security_protocol in ("SSL", "SASL_SSL")
    for server in settings.common_config()["bootstrap_servers"]:
        host, _, port = server.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            with contextlib.closing(socket.create_connection((host, int(port)), timeout=timeout_s)) as raw:
                raw.settimeout(timeout_s)
                sock: socket.socket = (
                    _tls_context(settings).wrap_socket(raw, server_hostname=host) if tls else raw
                )
                with contextlib.closing(sock):
                    sock.sendall(_request(settings.client_id))
                    size, correlation = struct.unpack(">ii", _recv_exact(sock, 8))
                    if size >= 4 and correlation == _CORRELATION_ID:
                        return True
        except (OSError, ValueError, ssl.SSLError, struct.error):
            continue
    return False
