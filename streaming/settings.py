"""Kafka settings shared by every service (environment variables ``DASAN_KAFKA_*``).

Defaults are for one machine (``dasan broker`` on 127.0.0.1:19092). ``DASAN_ENV=production``
keeps Kafka's own group timing (5-minute ``max.poll.interval.ms``); development keeps it short,
because the local Tansu broker waits for the rebalance timeout on every join. Security
(SASL_SSL with SCRAM, TLS) is set with ``DASAN_KAFKA_SECURITY_PROTOCOL`` and friends; with
``DASAN_ENV=production`` the settings refuse to load (a clear error at start) for PLAINTEXT,
SASL_PLAINTEXT, SASL PLAIN, or SSL without a client certificate.

Co-partitioning: services that follow a call across two topics (ASR workers: call.events +
call.audio; assist: call.events + call.transcripts) rely on the default key partitioner and the
range assignor giving one member the same partition numbers of every topic. The registry keeps
the partition counts of those topics equal; change them together (``dasan topics create
--partitions N``).

Every default is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

from typing import Any, Literal

from kafka.coordinator.assignors.range import RangePartitionAssignor
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEV_MAX_POLL_INTERVAL_MS = 6_000
PROD_MAX_POLL_INTERVAL_MS = 300_000


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASAN_KAFKA_", extra="ignore")

    env: Literal["development", "production"] = Field(
        default="development", validation_alias="DASAN_ENV", description="development | production"
    )
    bootstrap: str = Field(default=DEFAULT_BOOTSTRAP, description="Comma-separated host:port list")
    client_id: str = Field(default="dasan", description="Client id reported to the broker")

    # Security (production: SASL_SSL with SCRAM-SHA-512 against Apache Kafka).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT here; SASL_SSL (or SSL with a client certificate) against a production "
        "cluster: DASAN_ENV=production refuses PLAINTEXT and SASL_PLAINTEXT",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism (SCRAM-SHA-512 recommended)"
    )
    sasl_username: str | None = Field(default=None, description="SASL user")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (from a secret)")
    ssl_cafile: str | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates"
    )
    ssl_certfile: str | None = Field(default=None, description="Client certificate (mutual TLS)")
    ssl_keyfile: str | None = Field(default=None, description="Client key (mutual TLS)")
    ssl_check_hostname: bool = Field(
        default=True, description="Verify the broker host name in its certificate"
    )

    # Producer.
    acks: Literal["all", "1", "0"] = Field(default="all", description="Producer acknowledgements")
    retries: int = Field(default=5, ge=0, description="Bounded retries; with acks=all and idempotence")
    linger_ms: int = Field(default=5, ge=0, description="Producer batching delay")
    compression_type: Literal["gzip", "none"] = Field(
        default="none",
        description="gzip pays for large JSON (suggestions, summaries) over a WAN; off for audio and on loopback",
    )
    max_message_bytes: int = Field(default=1_048_576, ge=1024, description="Larger events are refused")
    request_timeout_ms: int = Field(default=30_000, description="Broker request timeout")

    # Consumer.
    max_poll_interval_ms: int | None = Field(
        default=None, description="None: 6 s in development (fast Tansu joins), 300 s in production"
    )
    session_timeout_ms: int | None = Field(
        default=None, description="None: 10 s in production, max(6 s, poll interval) in development"
    )
    max_poll_records: int = Field(default=500, description="Most records handled per poll batch")
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        description="Broker-side wait for more data per fetch; low for live latency (Kafka: 500)",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new consumer group starts"
    )
    dedupe_window: int = Field(
        default=100_000, ge=0, description="Event ids remembered per consumer for dedupe"
    )

    @model_validator(mode="after")
    def _production_safety(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError("SASL needs DASAN_KAFKA_SASL_MECHANISM and DASAN_KAFKA_SASL_USERNAME")
        if self.env == "production":
            # Raw audio and unmasked transcripts cross this connection: in production it is
            # encrypted (TLS) and authenticated as the service's own principal (its ACLs).
            if self.security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
                raise ValueError(
                    f"DASAN_ENV=production refuses DASAN_KAFKA_SECURITY_PROTOCOL={self.security_protocol}: "
                    "call audio and unmasked transcripts would cross the network in clear. Use SASL_SSL "
                    "(SCRAM-SHA-512, the service's own user) or SSL with a client certificate "
                    "(DASAN_KAFKA_SSL_CERTFILE/_KEYFILE); see docs/security.md"
                )
            if self.security_protocol == "SSL" and not (self.ssl_certfile and self.ssl_keyfile):
                raise ValueError(
                    "DASAN_ENV=production with DASAN_KAFKA_SECURITY_PROTOCOL=SSL needs a client certificate "
                    "(DASAN_KAFKA_SSL_CERTFILE and DASAN_KAFKA_SSL_KEYFILE): without one the broker "
                    "cannot tell the services apart and no per-service ACL applies"
                )
            if self.sasl_mechanism == "PLAIN" and self.security_protocol == "SASL_SSL":
                raise ValueError(
                    "DASAN_ENV=production refuses DASAN_KAFKA_SASL_MECHANISM=PLAIN: use SCRAM-SHA-512"
                )
        return self

    @property
    def poll_interval_ms(self) -> int:
        if self.max_poll_interval_ms is not None:
            return self.max_poll_interval_ms
        return PROD_MAX_POLL_INTERVAL_MS if self.env == "production" else DEV_MAX_POLL_INTERVAL_MS

    def common_config(self) -> dict[str, Any]:
        """kafka-python keyword arguments shared by producers, consumers and the admin client."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap.split(",") if s.strip()],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_plain_username"] = self.sasl_username
            cfg["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.security_protocol in ("SSL", "SASL_SSL"):
            cfg["ssl_cafile"] = self.ssl_cafile
            cfg["ssl_certfile"] = self.ssl_certfile
            cfg["ssl_keyfile"] = self.ssl_keyfile
            cfg["ssl_check_hostname"] = self.ssl_check_hostname
        return cfg

    def producer_config(self) -> dict[str, Any]:
        cfg = self.common_config()
        cfg.update(
            acks="all" if self.acks == "all" else int(self.acks),
            retries=self.retries,
            linger_ms=self.linger_ms,
            max_request_size=self.max_message_bytes + 64 * 1024,
            request_timeout_ms=self.request_timeout_ms,
            compression_type=None if self.compression_type == "none" else self.compression_type,
            enable_idempotence=self.acks == "all",
            retry_backoff_ms=200,
        )
        return cfg

    def consumer_config(self, group_id: str | None) -> dict[str, Any]:
        cfg = self.common_config()
        poll = self.poll_interval_ms
        session = self.session_timeout_ms or (10_000 if self.env == "production" else max(poll, 6_000))
        cfg.update(
            group_id=group_id,
            partition_assignment_strategy=[RangePartitionAssignor],
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            max_poll_interval_ms=poll,
            session_timeout_ms=session,
            heartbeat_interval_ms=max(500, session // 3),
            max_poll_records=self.max_poll_records,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            request_timeout_ms=max(self.request_timeout_ms, session + 5_000),
            fetch_max_bytes=max(52_428_800, self.max_message_bytes * 2),
            max_partition_fetch_bytes=max(1_048_576, self.max_message_bytes + 64 * 1024),
        )
        return cfg


class PrivacySettings(BaseSettings):
    """How personal data is masked (``streaming.privacy``), environment variables ``DASAN_PRIVACY_*``."""

    model_config = SettingsConfigDict(env_prefix="DASAN_PRIVACY_", extra="ignore")

    names: Literal["model", "rules"] = Field(
        default="model",
        description="Personal names: 'model' = cue rules + kiwipiepy proper nouns (about 0.5 GB, loaded "
        "on first use, shared in the process); 'rules' = cue rules only (씨/님/이름은/상담사 …)",
    )
    context_segments: int = Field(
        default=4, ge=0, le=32, description="Recent final segments per call and channel the masker remembers"
    )
    context_seconds: float = Field(
        default=30.0, ge=0, le=600, description="…and for how long (seconds of call time) it remembers them"
    )
    max_conversations: int = Field(
        default=5000, ge=1, description="Open calls a masker keeps state for (least recently used dropped)"
    )
