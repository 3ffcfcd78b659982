"""Kafka client security settings (SASL/SCRAM + TLS) as the production manifests set them.

SASL is unit-tested (the local Tansu broker has no SCRAM users). TLS is exercised for real:
Tansu 0.6's own ``--cert``/``--key`` flags cannot be combined (its CLI rejects them together), so
the test puts a TLS terminator made with Python's ``ssl`` module and an ``openssl``-made CA in
front of a Tansu broker on loopback, advertises the TLS port, and runs the project's admin,
producer and consumer configuration through it, checking the certificate and host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from streaming.settings import KafkaSettings

PROD_ENV = {
    "DASAN_ENV": "production",
    "DASAN_KAFKA_BOOTSTRAP": "b0.kafka.svc:9093, b1.kafka.svc:9093",
    "DASAN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "DASAN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "DASAN_KAFKA_SASL_USERNAME": "dasan-app",
    "DASAN_KAFKA_SASL_PASSWORD": "s3cr3t-from-secretKeyRef",
    "DASAN_KAFKA_SSL_CAFILE": "/etc/dasan/kafka-ca/ca.crt",
}


def test_sasl_ssl_scram_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in PROD_ENV.items():
        monkeypatch.setenv(k, v)
    s = KafkaSettings()
    assert s.env == "production" and s.poll_interval_ms == 300_000
    assert "s3cr3t" not in repr(s)  # the password is a SecretStr
    for cfg in (s.producer_config(), s.consumer_config("assist")):
        assert cfg["bootstrap_servers"] == ["b0.kafka.svc:9093", "b1.kafka.svc:9093"]
        assert cfg["security_protocol"] == "SASL_SSL"
        assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
        assert cfg["sasl_plain_username"] == "dasan-app"
        assert cfg["sasl_plain_password"] == "s3cr3t-from-secretKeyRef"
        assert cfg["ssl_cafile"] == "/etc/dasan/kafka-ca/ca.crt"
        assert cfg["ssl_check_hostname"] is True
    p = s.producer_config()
    assert p["acks"] == "all" and p["enable_idempotence"] is True
    c = s.consumer_config("assist")
    assert c["group_id"] == "assist" and c["enable_auto_commit"] is False


def test_sasl_without_username_is_refused() -> None:
    with pytest.raises(ValidationError, match="SASL needs"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512")


def test_plaintext_config_carries_no_credentials() -> None:
    cfg = KafkaSettings(sasl_username="x", sasl_password="y").producer_config()
    assert "sasl_plain_password" not in cfg and "ssl_cafile" not in cfg


# ---------------------------------------------------------------- TLS against a real broker


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> Path:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}-ca",
             "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem", cwd=d)  # fmt: skip
    return d / f"{name}-ca.pem"


def make_server_cert(d: Path, name: str, ca: str, san: str) -> tuple[Path, Path]:
    """A server certificate for ``san`` signed by CA ``ca`` (files name.pem / name.key)."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
    (d / f"{name}.cnf").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}-ca.pem", "-CAkey", f"{ca}-ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", f"{name}.cnf", "-out", f"{name}.pem",
             cwd=d)  # fmt: skip
    return d / f"{name}.pem", d / f"{name}.key"


class TlsTerminator:
    """Accepts TLS on a loopback port and pipes the plaintext to the broker's port."""

    def __init__(self, listen_port: int, upstream_port: int, cert: Path, key: Path) -> None:
        self.listen_port, self.upstream_port = listen_port, upstream_port
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.handshakes = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.listen_port, ssl=self.ctx)
        )
        self.ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(server.wait_closed())

    def __enter__(self) -> TlsTerminator:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class TlsSetup(NamedTuple):
    bootstrap: str  # TLS, certificate for 127.0.0.1 signed by `ca`
    ca: Path
    wrong_ca: Path
    wrong_name_bootstrap: str  # TLS, certificate signed by `ca` but for another host name


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSetup]:
    """Tansu on a plaintext loopback port, reachable by the clients only through TLS."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates")
    from streaming.broker import broker_binary, free_port

    d = tmp_path_factory.mktemp("tls")
    ca, wrong_ca = make_ca(d, "good"), make_ca(d, "other")
    cert, key = make_server_cert(d, "broker", "good", "IP:127.0.0.1,DNS:localhost")
    bad_cert, bad_key = make_server_cert(d, "elsewhere", "good", "DNS:kafka.elsewhere.invalid")
    plain, tls, tls_bad_name = free_port(), free_port(), free_port()
    cmd = [broker_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
           "--advertised-listener-url", f"tcp://127.0.0.1:{tls}", "--storage-engine", "memory://tansu/"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with (
            TlsTerminator(tls, plain, cert, key) as term,
            TlsTerminator(tls_bad_name, plain, bad_cert, bad_key),
        ):
            yield TlsSetup(f"127.0.0.1:{tls}", ca, wrong_ca, f"127.0.0.1:{tls_bad_name}")
            assert term.handshakes > 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_tls_produce_and_consume_through_settings(tls_broker: TlsSetup) -> None:
    from streaming.admin import create_topics, describe_topics

    bootstrap, ca = tls_broker.bootstrap, tls_broker.ca
    s = KafkaSettings(
        bootstrap=bootstrap, security_protocol="SSL", ssl_cafile=str(ca), ssl_check_hostname=True
    )
    result = create_topics(s, partitions=1)
    assert result["call.events"] in {"created", "exists"}
    assert describe_topics(s)["call.events"] == 1
    value = uuid.uuid4().hex.encode()
    producer = KafkaProducer(**s.producer_config())
    try:
        meta = producer.send("call.events", key=b"tls-test", value=value).get(timeout=20)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(**s.consumer_config(None))
    try:
        tp = TopicPartition("call.events", 0)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        got: list[bytes] = []
        for _ in range(20):
            for records in consumer.poll(1000).values():
                got.extend(r.value for r in records)
            if value in got:
                break
        assert value in got
    finally:
        consumer.close()


def test_tls_with_the_wrong_ca_is_refused(tls_broker: TlsSetup, caplog: pytest.LogCaptureFixture) -> None:
    s = KafkaSettings(
        bootstrap=tls_broker.bootstrap, security_protocol="SSL", ssl_cafile=str(tls_broker.wrong_ca)
    )
    with caplog.at_level(logging.DEBUG, logger="kafka"), pytest.raises(KafkaError):
        KafkaProducer(**s.producer_config(), max_block_ms=3000, bootstrap_timeout_ms=4000)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_tls_host_name_is_checked_unless_switched_off(
    tls_broker: TlsSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate from the right CA for another host is refused (DASAN_KAFKA_SSL_CHECK_HOSTNAME)."""
    common: dict[str, Any] = dict(
        bootstrap=tls_broker.wrong_name_bootstrap, security_protocol="SSL", ssl_cafile=str(tls_broker.ca)
    )
    strict = KafkaSettings(**common)
    assert strict.ssl_check_hostname is True
    with caplog.at_level(logging.DEBUG, logger="kafka"), pytest.raises(KafkaError):
        KafkaProducer(**strict.producer_config(), max_block_ms=3000, bootstrap_timeout_ms=4000)
    assert "mismatch" in caplog.text.lower()
    lax = KafkaSettings(**common, ssl_check_hostname=False)
    from streaming.admin import create_topics, describe_topics

    create_topics(lax, partitions=1)
    assert describe_topics(lax)["call.audio"] == 1
