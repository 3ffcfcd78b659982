"""``dasan``: one command line for every part of Dasan Assist.

Each package registers its own subcommands (``<package>/cli.py``, function ``register``);
heavy imports (models, torch) happen only inside the command that needs them, so ``--help``
stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DESCRIPTION = """\
Dasan Assist: real-time help for 120 Dasan Call Center counselors.

Live call audio is transcribed (asr), every event travels through Kafka (streaming),
the assist service finds the regulations behind the caller's question and drafts a cited
answer (assist), and counselors, supervisors and QA follow it in the browser (console).
"""


def build_parser() -> argparse.ArgumentParser:
    from asr import cli as asr_cli
    from assist import cli as assist_cli
    from console import cli as console_cli
    from streaming import cli as streaming_cli

    from . import tools

    parser = argparse.ArgumentParser(
        prog="dasan", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    eval_parser = sub.add_parser("eval", help="Measure quality on a labelled file (retrieval, assist, asr)")
    groups = {"eval": eval_parser.add_subparsers(dest="eval_command", metavar="WHAT", required=True)}
    for module in (streaming_cli, asr_cli, assist_cli, console_cli, tools):
        module.register(sub, groups)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        raise SystemExit(2)
    rc = func(args)
    raise SystemExit(rc or 0)


def package_main(package: str, argv: Sequence[str] | None = None) -> None:
    """``python -m <package> …`` is ``dasan <package-command> …`` for that package's commands."""
    main(list(argv if argv is not None else sys.argv[1:]))
