"""Settings of the console (web app + recorder), environment variables ``DASAN_CONSOLE_*``.

Secrets follow the FastAPI full-stack template: the built-in defaults only work in
development (``DASAN_ENV=development``, the default); anywhere else they are refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming import paths

from .vocabulary import Role

log = logging.getLogger("dasan.console")

INSECURE_DEFAULT = "changethis"


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
    session_secret: SecretStr = Field(
        default=SecretStr(INSECURE_DEFAULT), description="Signs session cookies; must be set in production"
    )
    session_max_age_s: int = Field(default=10 * 3600, ge=60, description="Session lifetime (one shift)")
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
    ws_queue_max: int = Field(
        default=256, ge=8, description="Live events buffered per websocket client before it is dropped"
    )
    ws_send_timeout_s: float = Field(
        default=10.0, gt=0, description="A client that does not take a message in this time is dropped"
    )
    ws_batch_max: int = Field(default=200, ge=10, description="Events per catch-up message on resume")
    ws_heartbeat_s: float = Field(default=5.0, gt=0, description="Status message interval on idle sockets")
    corpus_path: Path = Field(
        default_factory=_default_corpus, description="Regulation corpus JSONL for citation look-ups"
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
        if self.session_secret.get_secret_value() == INSECURE_DEFAULT:
            msg = (
                f'DASAN_CONSOLE_SESSION_SECRET is "{INSECURE_DEFAULT}"; '
                "set a long random value (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
            if self.env != "development":
                raise ValueError(msg)
            log.warning(msg)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else self.env != "development"
