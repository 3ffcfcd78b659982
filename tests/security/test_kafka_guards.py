"""Production Kafka guards: no clear-text or unauthenticated connection when DASAN_ENV=production.

Raw call audio and unmasked transcripts cross the Kafka connection. In production the settings
refuse to load (every service builds them at start) unless the connection is encrypted and
authenticated as the service's own principal: SASL_SSL with SCRAM, or SSL with a client certificate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from streaming.settings import KafkaSettings

DASAN = str(Path(sys.executable).with_name("dasan"))
PROD: dict[str, Any] = {"DASAN_ENV": "production"}  # the alias every service reads
SCRAM: dict[str, Any] = {
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "dasan-assist",
    "sasl_password": "x",
}


@pytest.mark.parametrize(
    ("protocol", "extra"),
    [("PLAINTEXT", {}), ("SASL_PLAINTEXT", SCRAM)],
)
def test_production_refuses_clear_text(protocol: str, extra: dict[str, Any]) -> None:
    with pytest.raises(
        ValidationError, match=f"DASAN_ENV=production refuses DASAN_KAFKA_SECURITY_PROTOCOL={protocol}"
    ):
        KafkaSettings(**PROD, security_protocol=protocol, **extra)


def test_production_refuses_tls_without_a_client_identity() -> None:
    with pytest.raises(ValidationError, match="needs a client certificate"):
        KafkaSettings(**PROD, security_protocol="SSL", ssl_cafile="/ca.pem")
    with pytest.raises(ValidationError, match="SASL_MECHANISM=PLAIN"):
        KafkaSettings(**PROD, security_protocol="SASL_SSL", **{**SCRAM, "sasl_mechanism": "PLAIN"})


def test_production_accepts_authenticated_tls() -> None:
    s = KafkaSettings(**PROD, security_protocol="SASL_SSL", ssl_cafile="/ca.pem", **SCRAM)
    assert s.common_config()["security_protocol"] == "SASL_SSL"
    m = KafkaSettings(
        **PROD,
        security_protocol="SSL",
        ssl_cafile="/ca.pem",
        ssl_certfile="/c.pem",
        ssl_keyfile="/k.pem",
    )
    assert m.env == s.env == "production" and m.common_config()["ssl_certfile"] == "/c.pem"


def test_development_keeps_plaintext_for_the_local_broker() -> None:
    dev: dict[str, Any] = {"DASAN_ENV": "development"}
    assert KafkaSettings(**dev).security_protocol == "PLAINTEXT"


def test_a_service_refuses_to_start_with_a_clear_error() -> None:
    """What an operator sees: the command stops at once and names the setting (no broker needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASAN_KAFKA_")}
    env.update(DASAN_ENV="production", DASAN_KAFKA_BOOTSTRAP="127.0.0.1:1")
    out = subprocess.run(
        [DASAN, "topics", "create"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode != 0
    assert "DASAN_ENV=production refuses DASAN_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in out.stderr
