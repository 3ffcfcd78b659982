"""Commands of the console package: ``dasan console run|migrate`` and ``dasan users add|list``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .vocabulary import Role


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add this package's subcommands to the `dasan` parser."""
    c = sub.add_parser(
        "console",
        help="Run the web console (counselor screen, review, QA) and its recorder",
        description="The console: a web app for counselors, supervisors and QA, and the recorder that "
        "writes every Kafka topic to the database (SQLite by default, PostgreSQL in production).",
    )
    cs = c.add_subparsers(dest="console_command", metavar="ACTION", required=True)
    run = cs.add_parser("run", help="Serve the web app (and the recorder, unless --no-recorder)")
    run.add_argument("--host", help="address to listen on (default DASAN_CONSOLE_HOST, 127.0.0.1)")
    run.add_argument("--port", type=int, help="port (default DASAN_CONSOLE_PORT, 8000)")
    run.add_argument("--no-recorder", action="store_true", help="serve pages only; another process records")
    run.set_defaults(func=_run)
    mig = cs.add_parser("migrate", help="Create or upgrade the database schema (Alembic)")
    mig.add_argument("--revision", default="head", help="target revision (default head)")
    mig.set_defaults(func=_migrate)

    u = sub.add_parser("users", help="Create and list console users")
    us = u.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = us.add_parser("add", help="Create a user (prints a generated password if none is given)")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True, type=Role, choices=list(Role), help="counselor, supervisor, qa or admin"
    )
    add.add_argument("--team", help="team (counselors and supervisors; a supervisor sees the team's calls)")
    add.add_argument("--name", help="display name")
    add.add_argument("--password", help="password (at least 10 characters); generated if left out")
    add.add_argument(
        "--reset", action="store_true", help="if the user exists, set a new password (and this role and team)"
    )
    add.set_defaults(func=_users_add)
    ls = us.add_parser("list", help="List users")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_users_list)


def _store() -> Any:
    from .db import make_engine, migrate
    from .settings import ConsoleSettings
    from .store import Store

    settings = ConsoleSettings()
    engine = make_engine(settings)
    migrate(engine, settings)
    return Store(engine, settings.timezone)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from streaming.logs import setup_logging

    from .app import create_app
    from .settings import ConsoleSettings

    setup_logging("console")
    settings = ConsoleSettings()
    host = args.host or settings.host
    port = args.port or settings.port
    app = create_app(settings, with_recorder=not args.no_recorder)
    print(f"console: http://{host}:{port}/  (Ctrl-C stops it)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_config=None, ws_max_size=1 << 20)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from .db import current_revision, make_engine, migrate
    from .settings import ConsoleSettings

    settings = ConsoleSettings()
    engine = make_engine(settings)
    migrate(engine, settings, args.revision)
    print(
        f"database at revision {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})"
    )
    return 0


def _users_add(args: argparse.Namespace) -> int:
    from .auth import generate_password, hash_password
    from .store import Conflict

    if args.password is not None and len(args.password) < 10:
        print("error: the password needs at least 10 characters", file=sys.stderr)
        return 2
    if args.role is Role.counselor and not args.team:
        print("note: a counselor without --team is not on any supervisor's board", file=sys.stderr)
    password = args.password or generate_password()
    store = _store()
    try:
        user = store.add_user(args.username, hash_password(password), args.role, args.team, args.name)
        verb = "created"
    except Conflict as exc:
        if not args.reset:
            print(f"error: {exc} (--reset gives it a new password)", file=sys.stderr)
            return 1
        user = store.reset_user(args.username, hash_password(password), args.role, args.team, args.name)
        verb = "reset"
    line = f"{verb} {user.username} (role {user.role}{', team ' + user.team if user.team else ''})"
    print(line + (f"  password: {password}" if args.password is None else ""))
    return 0


def _users_list(args: argparse.Namespace) -> int:
    import json

    users = _store().list_users()
    rows = [
        {"username": u.username, "role": u.role, "team": u.team, "name": u.display_name, "active": u.active}
        for u in users
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{'username':20s} {'role':11s} {'team':12s} active")
    for r in rows:
        print(
            f"{r['username']:20s} {r['role']:11s} {(r['team'] or '-'):12s} {'yes' if r['active'] else 'no'}"
        )
    return 0
