"""The readiness probe asks the broker a question; a socket that only accepts is not a broker."""

from __future__ import annotations

import socket

from streaming.broker import free_port
from streaming.probe import broker_answers
from streaming.settings import KafkaSettings


def test_a_running_broker_answers(kafka_settings) -> None:
    assert broker_answers(kafka_settings, timeout_s=2.0)


def test_nothing_listening_is_not_a_broker() -> None:
    assert not broker_answers(KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"), timeout_s=0.5)


def test_a_hung_listener_is_not_a_broker() -> None:
    """A stopped broker process still completes TCP handshakes (the kernel's listen backlog)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)  # accepts into the backlog, never reads or answers
        port = srv.getsockname()[1]
        assert not broker_answers(KafkaSettings(bootstrap=f"127.0.0.1:{port}"), timeout_s=0.5)
