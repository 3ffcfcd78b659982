"""The console's share of the security tests uses the console's fixtures: the store on SQLite and
PostgreSQL, users of every role, clients of the real app, call builders and a live server."""

from __future__ import annotations

from tests.console.conftest import (  # noqa: F401 (pytest fixtures, re-exported to this folder)
    call_script,
    client_factory,
    clock,
    console_settings,
    store,
    users,
)
