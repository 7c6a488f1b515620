"""The ``labelcast`` command line: one sub-command per module in :mod:`backend.commands`.

Each command module has ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Importing a command module is cheap: heavy imports (torch, Flask)
happen inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from backend import __version__
from backend.exceptions import LabelCastError

# Module names under backend.commands, in the order ``labelcast --help`` lists them.
COMMANDS = ("simulate", "data", "embed", "encoders", "serve", "worker", "connect", "doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelcast",
        description="Forecast how many labels a chest X-ray classifier needs, live in Label Studio.",
    )
    parser.add_argument("--version", action="version", version=f"labelcast {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"backend.commands.{name}").register(subparsers)
    _plain_help(parser)
    return parser


_REST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_text(text: str | None) -> str | None:
    """Docstring text as a terminal shows it: reST's ``code`` becomes `code` and
    :role:`name` becomes name."""
    if not text:
        return text
    return _REST_ROLE.sub(r"\1", text).replace("``", "`")


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Every description and help text below ``parser`` in plain text (command modules use
    their docstrings, written in reST, as descriptions)."""
    parser.description = plain_text(parser.description)
    for action in parser._actions:
        action.help = plain_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain_text(choice.help)
            for sub in set(action.choices.values()):
                _plain_help(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LabelCastError as exc:
        print(f"labelcast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
