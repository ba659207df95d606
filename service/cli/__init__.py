"""`audience`: the command line, above the engine (vision/) and the service.

Each subcommand is one module of this package with `add_parser(subparsers)` and `run(args) -> int` (the exit
code); `COMMANDS` below is the one place they are registered. Shared options and argument types are in
`options.py`; exit codes are vision.errors' (`audience <command> --help` prints the table).
"""
from __future__ import annotations

import os
import sys

from vision.errors import EXIT_INTERRUPTED, AudienceError

from . import analyze, batch, demo, keys, live, model, purge, serve
from .options import Parser

COMMANDS = {"analyze": analyze, "live": live, "batch": batch, "demo": demo, "serve": serve, "purge": purge,
            "keys": keys, "model": model}


def build_parser() -> Parser:
    parser = Parser(prog="audience", description="Audience reaction analysis: faces -> expressions -> curves.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, module in COMMANDS.items():
        module.add_parser(sub, name)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from vision.quiet import native_stderr_to_devnull

    with native_stderr_to_devnull():
        try:
            return COMMANDS[args.command].run(args)
        except KeyboardInterrupt:
            print("audience: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - every failure leaves as one line
            if isinstance(exc, AudienceError):
                print(f"audience: error: {exc}", file=sys.stderr)
                return exc.exit_code
            if os.environ.get("AUDIENCE_DEBUG"):
                raise
            print(f"audience: internal error: {exc.__class__.__name__}: {exc} "
                  f"(set AUDIENCE_DEBUG=1 for a traceback)", file=sys.stderr)
            return 1
