"""Settings of the console (web app + recorder), environment variables ``DASAN_CONSOLE_*``.

The session secret's built-in default (and an empty one) is refused on any address other than
loopback, whatever ``DASAN_ENV`` says, and anywhere in production; in development on loopback it
only warns. (``DASAN_ENV`` unset means development: a forgotten variable must not open the console
to the network with a public secret.)
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming import paths
from streaming.callers import DEV_CALLER_KEY_SECRET

from .vocabulary import Role

log = logging.getLogger("dasan.console")

INSECURE_DEFAULT = "changethis"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; any other name or address (0.0.0.0, ::) is the network."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _default_db_url() -> str:
    return f"sqlite:///{paths.var_dir() / 'console.sqlite3'}"


def _default_corpus() -> Path:
    return paths.shared_dir() / "corpus" / "regulations.jsonl"


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASAN_CONSOLE_", extra="ignore")

    env: Literal["development", "production"] = Field(
        default="development", validation_alias="DASAN_ENV", description="development | production"
    )
    database_url: str = Field(
        default_factory=_default_db_url,
        description="SQLAlchemy URL; SQLite file under DASAN_VAR_DIR by default, "
        "postgresql+psycopg://… in production",
    )
    db_schema: str | None = Field(
        default=None, description="PostgreSQL schema to use (search_path); None: the server's default"
    )
    host: str = Field(default="127.0.0.1", description="Address the web app listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web app listens on")
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Internal port serving Prometheus /metrics without log-in (0: none; on the web port "
        "/metrics needs an admin or QA log-in). Expose it to the scraper only, never through the ingress",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address of the internal metrics port")
    session_secret: SecretStr = Field(
        default=SecretStr(INSECURE_DEFAULT), description="Signs session cookies; must be set in production"
    )
    session_max_age_s: int = Field(
        default=10 * 3600,
        ge=60,
        description="Absolute session lifetime (one shift): a session ends this long after log-in, however active",
    )
    session_idle_s: int = Field(
        default=30 * 60,
        ge=60,
        description="A session with no request for this long ends (open pages that poll keep it alive)",
    )
    cookie_secure: bool | None = Field(
        default=None, description="Secure flag on the session cookie; None: on except in development"
    )
    cookie_samesite: Literal["lax", "strict"] = Field(default="lax", description="SameSite of the cookie")
    raw_text_roles: list[Role] = Field(
        default_factory=lambda: [Role.qa],
        description="Roles allowed to see unmasked transcripts (every access is audited)",
    )
    raw_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Unmasked transcript text is erased from the store after this many days (call.transcripts' retention)",
    )
    transcript_retention_days: float = Field(
        default=90.0,
        gt=0,
        description="Masked transcripts, the call's event log, keywords and suggestions (with their feedback) "
        "are deleted after this many days; the call and its summary stay",
    )
    feedback_retention_days: float = Field(
        default=90.0,
        gt=0,
        description="Votes, reasons and copies of suggestions are deleted after this many days",
    )
    caller_key_retention_days: float = Field(
        default=365.0,
        gt=0,
        description="Calls lose their caller key and masked number after this many days (caller history "
        "reaches back this far)",
    )
    call_record_retention_days: float = Field(
        default=3 * 365.0,
        gt=0,
        description="Calls are deleted with their summaries and review history after this many days",
    )
    audit_retention_days: float = Field(
        default=2 * 365.0, gt=0, description="Audit log entries are deleted after this many days"
    )
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the console process runs the retention job"
    )
    caller_key_secret: SecretStr = Field(
        default=SecretStr(DEV_CALLER_KEY_SECRET),
        validation_alias="DASAN_ASR_CALLER_KEY_SECRET",
        description="The gateway's caller-key secret (same variable): `dasan privacy erase --caller` derives "
        "the caller's key with it",
    )
    ws_queue_max: int = Field(
        default=256, ge=8, description="Live events buffered per websocket client before it is dropped"
    )
    ws_send_timeout_s: float = Field(
        default=10.0, gt=0, description="A client that does not take a message in this time is dropped"
    )
    ws_batch_max: int = Field(default=200, ge=10, description="Events per catch-up message on resume")
    ws_heartbeat_s: float = Field(default=5.0, gt=0, description="Status message interval on idle sockets")
    ws_session_check_s: float = Field(
        default=30.0,
        gt=0,
        description="Open websockets re-check their session (revoked, expired, user deactivated) this often",
    )
    ws_max_per_user: int = Field(
        default=8, ge=1, description="Live websockets one user may hold open at once (per console process)"
    )
    login_window_s: int = Field(
        default=15 * 60, ge=10, description="Window of the log-in limits below (sliding, per process)"
    )
    login_max_per_ip: int = Field(
        default=30,
        ge=1,
        description="Log-in attempts per client address per window (successful ones are given back); then 429",
    )
    login_max_failures_per_user: int = Field(
        default=10, ge=1, description="Failed log-ins per user name per window; then 429 for that name"
    )
    login_hash_concurrency: int = Field(
        default=2, ge=1, description="Password hashes (argon2, 64 MiB each) computed at once by log-ins"
    )
    login_hash_queue: int = Field(
        default=8, ge=0, description="Log-ins waiting for a hashing slot; more are answered 503 at once"
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For (the client address of log-in limits and the audit "
        "log); comma-separated, '*' only when nothing but the proxy can reach the console",
    )
    corpus_path: Path = Field(
        default_factory=_default_corpus, description="Regulation corpus JSONL for citation look-ups"
    )
    assist_url: str = Field(
        default="http://127.0.0.1:8082",
        description="The assist service's internal port (loopback): the counselor search and article "
        "versions are asked there (/internal/search, /internal/article, /internal/kb), so the console never "
        "loads the encoder",
    )
    assist_timeout_s: float = Field(
        default=3.0, gt=0, description="Longest wait for the assist service's internal search"
    )
    recorder_group: str = Field(
        default="console-recorder", description="Kafka consumer group of the recorder"
    )
    timezone: str = Field(
        default="Asia/Seoul", description="Site time zone: day boundaries of date search and daily metrics"
    )
    page_size: int = Field(default=50, ge=1, le=500, description="Default page size of lists")
    migrate_on_start: bool = Field(default=True, description="Run the database migrations at start-up")

    @model_validator(mode="after")
    def _secrets(self) -> ConsoleSettings:
        self.check_bind(self.host)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self

    @property
    def insecure_secret(self) -> bool:
        return self.session_secret.get_secret_value().strip() in ("", INSECURE_DEFAULT)

    def check_bind(self, host: str) -> None:
        """Refuse to serve on ``host`` with the public default (or an empty) session secret: on a
        non-loopback address whatever ``DASAN_ENV`` says, and anywhere in production."""
        if not self.insecure_secret:
            return
        msg = (
            "DASAN_CONSOLE_SESSION_SECRET is empty or the public default; "
            "set a long random value (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
        if self.env != "development":
            raise ValueError(msg)
        if not is_loopback(host):
            raise ValueError(f"{msg}: refused on the non-loopback address {host!r}")
        log.warning(msg + " (accepted on loopback in development only)")

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else self.env != "development"
