"""Entry point of the ``robot-brain`` command-line tool.

Subcommands live in sibling modules of this package. Each module that defines
``register(subparsers)`` adds its subcommand(s) and sets ``func`` (``args -> int``) as the
parser default, so new subcommands need no edit here.

Errors the user can fix raise :class:`robot_brain.errors.UserError`: they become exit
status 2 and a single line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import robot_brain
from robot_brain import cli as cli_package
from robot_brain.errors import UserError

EXIT_USAGE_OR_INPUT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand module found in ``robot_brain.cli``."""
    parser = argparse.ArgumentParser(
        prog="robot-brain",
        description="Run one learned policy on any URDF robot arm over ROS 2.",
    )
    parser.add_argument("--version", action="version", version=f"robot_brain {robot_brain.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if module_info.name == "main":
            continue
        module = importlib.import_module(f"{cli_package.__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE_OR_INPUT_ERROR
    try:
        return int(args.func(args))
    except UserError as error:
        print(f"robot-brain {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE_OR_INPUT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
