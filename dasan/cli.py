"""``dasan``: one command line for every part of Dasan Assist.

Each package registers its own subcommands (``<package>/cli.py``, function ``register``;
``dasan/commands.py`` for the cross-package ones); heavy imports (models, torch) happen only inside
the command that needs them, so ``--help`` stays instant. ``python -m <package>`` runs one
package's commands without this module (``streaming/cmdline.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from streaming.cmdline import CommandParser, run
from streaming.cmdline import build_parser as _build

DESCRIPTION = """\
Dasan Assist: real-time help for 120 Dasan Call Center counselors.

Live call audio is transcribed (asr), every event travels through Kafka (streaming),
the assist service finds the regulations behind the caller's question and drafts a cited
answer (assist), and counselors, supervisors and QA follow it in the browser (console).
"""


def build_parser() -> CommandParser:
    from asr import cli as asr_cli
    from assist import cli as assist_cli
    from console import cli as console_cli
    from streaming import cli as streaming_cli

    from . import commands

    modules = (streaming_cli, asr_cli, assist_cli, console_cli, commands)
    return _build("dasan", DESCRIPTION, [m.register for m in modules])


def main(argv: Sequence[str] | None = None) -> None:
    run(build_parser(), argv)
