"""Engine, sessions and migrations (Alembic, run programmatically)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from .settings import ConsoleSettings

log = logging.getLogger("dasan.console")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def make_engine(settings: ConsoleSettings) -> Engine:
    url = settings.database_url
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        # Korean stays readable (and searchable with LIKE) inside JSON columns.
        "json_serializer": lambda obj: json.dumps(obj, ensure_ascii=False),
    }
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    elif settings.db_schema:
        if not _SCHEMA_NAME.match(settings.db_schema):
            raise ValueError(f"invalid schema name {settings.db_schema!r}")
        kwargs["connect_args"] = {"options": f"-csearch_path={settings.db_schema},public"}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def ensure_schema(engine: Engine, schema: str | None) -> None:
    if schema and engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def migrate(engine: Engine, settings: ConsoleSettings, revision: str = "head") -> None:
    """Bring the database to ``revision`` (creates everything on an empty database)."""
    from alembic import command
    from alembic.config import Config

    ensure_schema(engine, settings.db_schema)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("database migrated", extra={"revision": revision, "dialect": engine.dialect.name})


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
