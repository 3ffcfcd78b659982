"""Settings safety and the `dasan console` / `dasan users` commands."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from console.settings import ConsoleSettings
from dasan.cli import main


def test_insecure_default_secret_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASAN_ENV", "production")
    with pytest.raises(ValidationError, match="SESSION_SECRET"):
        ConsoleSettings()
    monkeypatch.setenv("DASAN_CONSOLE_SESSION_SECRET", "a-long-random-session-secret-value")
    s = ConsoleSettings()
    assert s.secure_cookies  # Secure cookies by default in production
    monkeypatch.setenv("DASAN_ENV", "development")
    monkeypatch.delenv("DASAN_CONSOLE_SESSION_SECRET")
    assert not ConsoleSettings().secure_cookies


def test_unknown_raw_text_role_refused() -> None:
    with pytest.raises(ValidationError):
        ConsoleSettings(raw_text_roles=["everyone"])


def test_migrate_and_users_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DASAN_CONSOLE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")

    def run(*argv: str) -> int:
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        return int(exc.value.code or 0)

    assert run("console", "migrate") == 0
    assert "revision 0003" in capsys.readouterr().out
    assert run("users", "add", "kim", "--role", "counselor", "--team", "A") == 0
    out = capsys.readouterr().out
    assert "created kim" in out and "password: " in out
    generated = out.split("password: ")[1].strip()
    assert run("users", "add", "kim", "--role", "counselor") == 1  # exists
    assert run("users", "add", "qa1", "--role", "qa", "--password", "a-chosen-password") == 0
    assert "password:" not in capsys.readouterr().out
    assert run("users", "add", "x", "--role", "qa", "--password", "short") == 2
    # The password on standard input keeps it off the command line (visible to every local user).
    monkeypatch.setattr("sys.stdin", io.StringIO("a-piped-password-123\n"))
    assert run("users", "add", "qa2", "--role", "qa", "--password-stdin") == 0
    assert "password:" not in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert run("users", "add", "qa3", "--role", "qa", "--password-stdin") == 2
    assert (
        run("users", "add", "qa3", "--role", "qa", "--password-stdin", "--password", "a-chosen-password") == 2
    )
    assert run("users", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["username"], r["role"], r["team"]) for r in rows] == [
        ("kim", "counselor", "A"),
        ("qa1", "qa", None),
        ("qa2", "qa", None),
    ]
    # The printed password works for log-in.
    from console.auth import authenticate
    from console.db import make_engine
    from console.store import Store

    store = Store(make_engine(ConsoleSettings()))
    assert authenticate(store, "kim", generated).user is not None
    assert authenticate(store, "kim", "wrong").user is None
    assert authenticate(store, "qa2", "a-piped-password-123").user is not None
    assert run("users", "add", "kim", "--role", "counselor", "--team", "B", "--reset") == 0
    new_pw = capsys.readouterr().out.split("password: ")[1].strip()
    assert authenticate(store, "kim", generated).user is None
    user = authenticate(store, "kim", new_pw).user
    assert user is not None and user.team == "B"
