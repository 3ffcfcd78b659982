"""The argparse skeleton every command line of the project shares.

Each package's ``cli.py`` has ``register(sub, groups)``: it adds its commands to ``sub`` and its
quality measurements to ``groups["eval"]``. ``dasan`` (``dasan/cli.py``) builds one parser from all
of them; ``python -m <package>`` (each package's ``__main__.py``) builds one from that package's
own, so a package runs without the ``dasan`` package above it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

Register = Callable[[Any, dict[str, Any]], None]

# Command groups a package may add to: name → (help, metavar of its subcommands)
GROUPS = {"eval": ("Measure quality on a labelled file (retrieval, assist, asr)", "WHAT")}


class _Groups(dict[str, Any]):
    """``groups[name]`` creates the group's command on first use: a parser shows only groups that
    have commands (``python -m console`` has no ``eval``)."""

    def __init__(self, sub: Any) -> None:
        super().__init__()
        self.sub = sub

    def __missing__(self, name: str) -> Any:
        help_text, metavar = GROUPS[name]
        group = self.sub.add_parser(name, help=help_text)
        self[name] = group.add_subparsers(dest=f"{name}_command", metavar=metavar, required=True)
        return self[name]


class CommandParser(argparse.ArgumentParser):
    """A parser with one level of commands; ``commands`` maps each name to its parser."""

    commands: Mapping[str, argparse.ArgumentParser]


def build_parser(prog: str, description: str, registers: Sequence[Register]) -> CommandParser:
    parser = CommandParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = _Groups(sub)
    for register in registers:
        register(sub, groups)
    parser.commands = sub.choices
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> NoReturn:
    """Parse ``argv`` (the process's arguments by default), run the command, exit with its code."""
    from .hardware import configure_threading

    configure_threading()  # before any command imports torch or CTranslate2
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        raise SystemExit(2)
    raise SystemExit(func(args) or 0)


def package_main(package: str, registers: Sequence[Register], argv: Sequence[str] | None = None) -> NoReturn:
    """``python -m <package> …``: the package's commands, as ``dasan`` has them.

    The subcommands of the package's namesake command need no repetition of the name:
    ``python -m asr gateway`` is ``dasan asr gateway`` (``python -m asr asr gateway`` works too).
    """
    parser = build_parser(
        f"python -m {package}",
        f"The commands of the {package} package (the same as `dasan COMMAND …`).",
        registers,
    )
    args = list(sys.argv[1:] if argv is None else argv)
    namesake = parser.commands.get(package)
    if namesake is not None:
        parser.epilog = (
            f"The subcommands of '{package}' work without it: "
            f"`python -m {package} SUBCOMMAND …` is `python -m {package} {package} SUBCOMMAND …`."
        )
        if args and not args[0].startswith("-") and args[0] not in parser.commands:
            args.insert(0, package)
    run(parser, args)
