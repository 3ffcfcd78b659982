"""Commands of the console package: ``dasan console run|migrate``, ``dasan users
add|list|deactivate|activate|passwd|logout`` and ``dasan privacy retention|erase``.

Every command that changes a user or erases data writes an audit row in the name of the
operating-system user who ran it (role ``cli``). One module (~400 lines) because every command is a
thin argparse registration plus its handler, and they share the operator, store and audit helpers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .vocabulary import AuditAction, Role


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

    fb = sub.add_parser("feedback", help="Counselors' judgements of suggestions as evaluation data")
    fbs = fb.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    ex = fbs.add_parser(
        "export",
        help="Write judged suggestions (masked) as an utterances.jsonl eval file",
        description="Each suggestion a counselor judged becomes one line in the format of "
        "eval-dev/utterances.jsonl: the caller's words (masked) as the utterance, the articles of "
        "👍 or copied cards as relevant, those of 👎 cards as known-wrong. --summaries also writes the "
        "approved (possibly edited) summaries as reference summaries (calls.jsonl format).",
    )
    ex.add_argument("out", type=Path, help="the utterances.jsonl file to write")
    ex.add_argument("--since", default=None, help="only feedback from this date on (YYYY-MM-DD)")
    ex.add_argument("--summaries", type=Path, default=None, help="also write approved summaries here")
    ex.set_defaults(func=_feedback_export)

    u = sub.add_parser("users", help="Create and list console users")
    us = u.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = us.add_parser("add", help="Create a user (prints a generated password if none is given)")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True, type=Role, choices=list(Role), help="counselor, supervisor, qa or admin"
    )
    add.add_argument("--team", help="team (counselors and supervisors; a supervisor sees the team's calls)")
    add.add_argument("--name", help="display name")
    add.add_argument(
        "--password",
        help="password (at least 10 characters); generated if left out. On a shared machine prefer "
        "--password-stdin: a command line is visible to every local user (ps)",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (not the command line)",
    )
    add.add_argument(
        "--reset", action="store_true", help="if the user exists, set a new password (and this role and team)"
    )
    add.set_defaults(func=_users_add)
    ls = us.add_parser("list", help="List users")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_users_list)
    de = us.add_parser("deactivate", help="Stop a user from logging in and end all of their sessions now")
    de.add_argument("username")
    de.set_defaults(func=_users_active, active=False)
    ac = us.add_parser("activate", help="Let a deactivated user log in again")
    ac.add_argument("username")
    ac.set_defaults(func=_users_active, active=True)
    pw = us.add_parser(
        "passwd", help="Set a new password (generated and printed unless given); ends the user's sessions"
    )
    pw.add_argument("username")
    pw.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new password from standard input (not the command line)",
    )
    pw.set_defaults(func=_users_passwd)
    lo = us.add_parser("logout", help="End all sessions of a user (the account stays active)")
    lo.add_argument("username")
    lo.set_defaults(func=_users_logout)

    p = sub.add_parser(
        "privacy",
        help="Retention and erasure of personal data in the console's store",
        description="The retention job (also run hourly inside the console) and the erasure of one "
        "caller's or one call's data. Both are audited.",
    )
    ps = p.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    rt = ps.add_parser("retention", help="Delete what every table keeps past its retention, now")
    rt.add_argument("--json", action="store_true", help="print the counts as JSON")
    rt.set_defaults(func=_privacy_retention)
    er = ps.add_parser(
        "erase",
        help="Remove everything the store holds about a caller (by number) or one call",
        description="Removes the calls, transcripts, summaries, reviews, suggestions and feedback; "
        "rewrites the call ids in the audit log; prints what Kafka keeps until its retention.",
    )
    what = er.add_mutually_exclusive_group(required=True)
    what.add_argument("--caller", metavar="NUMBER", help="the caller's phone number (any format)")
    what.add_argument("--call", metavar="ID", help="one call id")
    er.add_argument("--dry-run", action="store_true", help="count what would be removed, remove nothing")
    er.add_argument("--json", action="store_true", help="print JSON")
    er.set_defaults(func=_privacy_erase)


def _store() -> Any:
    from .db import make_engine, migrate
    from .settings import ConsoleSettings
    from .store import Store

    settings = ConsoleSettings()
    engine = make_engine(settings)
    migrate(engine, settings)
    return Store(engine, settings.timezone)


def _feedback_export(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from .feedback_export import counts, eval_items, reference_summaries

    since = datetime.fromisoformat(args.since).replace(tzinfo=UTC) if args.since else None
    store = _store()
    items = eval_items(store, since)
    # an export reads every judged card's caller words (masked) and, with --summaries, the approved
    # summaries: audited like a console read
    store.audit(
        _operator(),
        AuditAction.feedback_export,
        detail=f"since={args.since or '-'} items={len(items)} summaries={bool(args.summaries)}",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    c = counts(items)
    print(f"{c['items']} judged suggestions ({c['relevant']} 👍/copied, {c['known_wrong']} 👎) → {args.out}")
    if args.summaries:
        refs = reference_summaries(store, since)
        args.summaries.parent.mkdir(parents=True, exist_ok=True)
        args.summaries.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in refs), encoding="utf-8"
        )
        print(f"{len(refs)} approved summaries → {args.summaries}")
    return 0


def _operator() -> Any:
    """The audit log's actor for a command: the operating-system user who ran it."""
    import getpass

    from .store import Actor

    try:
        name = getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        name = "unknown"
    return Actor(f"cli:{name}"[:64], "cli")


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from streaming.logs import setup_logging

    from .app import create_app
    from .settings import ConsoleSettings

    setup_logging("console")
    settings = ConsoleSettings()
    host = args.host or settings.host
    port = args.port or settings.port
    try:
        settings.check_bind(host)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, with_recorder=not args.no_recorder)
    if settings.metrics_port:
        # /healthz, /readyz and /metrics without log-in, for Prometheus and probes inside the cluster.
        from streaming.health import HealthServer

        from .routes.ops import readiness

        HealthServer(settings.metrics_host, settings.metrics_port, readiness(app)).start()
    print(f"console: http://{host}:{port}/  (Ctrl-C stops it)", file=sys.stderr)
    uvicorn.run(app, **uvicorn_options(settings, host, port))
    return 0


def uvicorn_options(settings: Any, host: str, port: int) -> dict[str, Any]:
    """How the console is served: uvicorn's access log off (the app logs paths without query
    strings), client addresses from X-Forwarded-For of the trusted proxies only."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "ws_max_size": 1 << 20,
    }


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

    if args.password_stdin:
        if args.password is not None:
            print("error: --password and --password-stdin exclude each other", file=sys.stderr)
            return 2
        args.password = sys.stdin.readline().rstrip("\r\n")
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
    from .vocabulary import AuditAction

    store.audit(
        _operator(),
        AuditAction.user_create if verb == "created" else AuditAction.user_password,
        target=user.username,
        detail=f"role={user.role} team={user.team}" + (" (--reset)" if verb == "reset" else ""),
    )
    line = f"{verb} {user.username} (role {user.role}{', team ' + user.team if user.team else ''})"
    print(line + (f"  password: {password}" if args.password is None else ""))
    if not user.active:
        print(
            f"note: {user.username} is deactivated and stays so (dasan users activate {user.username})",
            file=sys.stderr,
        )
    if user.role == Role.supervisor and not user.team:
        print("note: a supervisor without --team sees no calls", file=sys.stderr)
    return 0


def _users_active(args: argparse.Namespace) -> int:
    from .store import NotFound
    from .vocabulary import AuditAction

    store = _store()
    try:
        user, ended = store.set_active(args.username, args.active)
    except NotFound:
        print(f"error: no user {args.username!r}", file=sys.stderr)
        return 1
    action = AuditAction.user_activate if args.active else AuditAction.user_deactivate
    store.audit(_operator(), action, target=user.username, detail=f"sessions_ended={ended}")
    state = "active" if args.active else f"deactivated, {ended} session(s) ended"
    print(f"{user.username}: {state}")
    return 0


def _users_passwd(args: argparse.Namespace) -> int:
    from .auth import generate_password, hash_password
    from .store import NotFound
    from .vocabulary import AuditAction

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < 10:
            print("error: the password needs at least 10 characters", file=sys.stderr)
            return 2
    else:
        password = generate_password()
    store = _store()
    try:
        user, ended = store.change_password(args.username, hash_password(password))
    except NotFound:
        print(f"error: no user {args.username!r}", file=sys.stderr)
        return 1
    store.audit(
        _operator(), AuditAction.user_password, target=user.username, detail=f"sessions_ended={ended}"
    )
    line = f"new password for {user.username}; {ended} session(s) ended"
    print(line + ("" if args.password_stdin else f"  password: {password}"))
    if not user.active:
        print(f"note: {user.username} is deactivated (dasan users activate {user.username})", file=sys.stderr)
    return 0


def _users_logout(args: argparse.Namespace) -> int:
    from .vocabulary import AuditAction

    store = _store()
    user = store.user_by_name(args.username)
    if user is None:
        print(f"error: no user {args.username!r}", file=sys.stderr)
        return 1
    ended = store.revoke_sessions(user.id)
    store.audit(
        _operator(), AuditAction.user_sessions_revoke, target=user.username, detail=f"sessions_ended={ended}"
    )
    print(f"{user.username}: {ended} session(s) ended")
    return 0


def _privacy_retention(args: argparse.Namespace) -> int:
    import json

    from .retention import run_retention
    from .settings import ConsoleSettings

    counts = run_retention(_store(), ConsoleSettings())
    if args.json:
        print(json.dumps(counts, indent=2))
    else:
        for table, n in counts.items():
            print(f"{table:32s} {n:8d}")
    return 0


def _privacy_erase(args: argparse.Namespace) -> int:
    import json

    from .retention import erase, find_caller_calls
    from .settings import ConsoleSettings
    from .store import NotFound

    settings = ConsoleSettings()
    store = _store()
    if args.caller:
        try:
            calls = find_caller_calls(store, settings, args.caller)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        scope = "caller"
    else:
        try:
            calls = [store.get_call(args.call)]
        except NotFound:
            calls = []
        scope = "call"
    done = erase(store, calls, _operator(), scope=scope, dry_run=args.dry_run)
    report: dict[str, Any] = {
        "erasure": done.erasure_id,
        "dry_run": done.dry_run,
        "calls": done.call_ids,
        "removed": done.removed,
        "kafka": done.kafka_remains() if calls else [],
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"erasure {done.erasure_id}: {len(calls)} call(s) {'found' if args.dry_run else 'erased'}")
    if not calls:
        print("nothing in the store matches" + (" (no call with this caller's key)" if args.caller else ""))
        return 0
    for cid in done.call_ids:
        print(f"  call {cid}")
    print(f"rows {verb}:")
    for table, n in done.removed.items():
        print(f"  {table:32s} {n:8d}")
    print(
        "still in Kafka until each topic's retention (the console cannot delete single events there; "
        "the recorder will not record these calls again):"
    )
    for row in report["kafka"]:
        print(f"  {row['topic']:24s} {row['retention_days']:6g} days  until {row['until']}  ({row['holds']})")
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
