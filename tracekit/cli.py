"""The `tracekit` command.

With no subcommand it runs the collector and the terminal UI in one process. Each subcommand lives in its own module
under tracekit/commands/ and registers itself through `register(subparsers)`; this module only discovers and
dispatches, and turns tracekit's own errors into one clear line and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import sys
from typing import Callable, Sequence

import tracekit.commands
from tracekit.errors import TracekitError
from tracekit.files import restrict_umask
from tracekit.terminal_text import clean

Handler = Callable[[argparse.Namespace], int | None]

DESCRIPTION = """\
Observability for AI agents.

Run with no command to start the local collector (OTLP gRPC on 127.0.0.1:4317, HTTP on 127.0.0.1:4318) and the
terminal UI on one DuckDB store. Point any OpenTelemetry SDK at it with
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 and spans appear as they arrive.

Files tracekit creates are readable by you only, and span content is printed with control characters escaped.
"""

EPILOG = """\
environment:
  TRACEKIT_DB                 the store file used when --db is not given
  TRACEKIT_ALLOWED_HOSTS      Host names the collector answers besides localhost (see `tracekit collect --help`)
  OTEL_EXPORTER_OTLP_ENDPOINT where `tracekit demo` and tracekit.configure() send, when set

Run `tracekit COMMAND --help` for the options of a command.
"""


EXIT_STATUS = """\
exit status:
  0    success
  1    an unexpected failure (a bug: the traceback says where)
  2    bad usage or input, or a failure tracekit explains in one line on stderr (no store, a bad query, ...)
  130  interrupted (Ctrl-C)
  141  the output pipe was closed early (e.g. piped into `head`)
"""


def _document_exit_status(parser: argparse.ArgumentParser) -> None:
    """Add the exit codes to the --help of `parser` and of every subcommand under it that does not state its own."""
    if "exit status:" not in (parser.epilog or ""):
        parser.epilog = f"{parser.epilog.rstrip()}\n\n{EXIT_STATUS}" if parser.epilog else EXIT_STATUS
        if parser.formatter_class is argparse.HelpFormatter:
            parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the table's lines
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _document_exit_status(child)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full argument parser, with every command module found under tracekit/commands/ (or, with `only`, just
    the module of that name: running one command need not import all the others)."""
    parser = argparse.ArgumentParser(
        prog="tracekit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(tracekit.commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_") or (only is not None and module_info.name != only):
            continue   # shared helpers such as _options, not commands
        module = importlib.import_module(f"tracekit.commands.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    for command in set(subparsers.choices.values()):
        _document_exit_status(command)
    return parser


def _parser_for(command: str) -> argparse.ArgumentParser:
    """A parser knowing `command` when a module of that name registers it (importing only that module: most of a
    short command's time would otherwise go to importing every other command), else the full parser."""
    if command.isidentifier() and not command.startswith("_") \
            and importlib.util.find_spec(f"tracekit.commands.{command}") is not None:
        parser = build_parser(only=command)
        subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        if command in subcommands.choices:
            return parser
    return build_parser()


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for (importlib.metadata costs every command tens of ms)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **_: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser.exit(message=f"{parser.prog} {_version()}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tracekit-agents")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tracekit` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help", "--version")):
        # No command: collector + TUI in one process; options such as --db belong to `run`.
        arguments.insert(0, "run")
    args = _parser_for(arguments[0]).parse_args(arguments)
    handler: Handler = args.handler
    restrict_umask()  # the store, its WAL, logs, exports: owner-only (tracekit/files.py)
    try:
        return int(handler(args) or 0)
    except TracekitError as error:
        print(f"tracekit: error: {clean(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tracekit query ... | head`: the reader went away; exit quietly as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
