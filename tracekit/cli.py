"""The `tracekit` command.

With no subcommand it runs the collector and the terminal UI in one process. Each subcommand lives in its own module
under tracekit/commands/ and registers itself through `register(subparsers)`; this module only discovers and
dispatches, and turns tracekit's own errors into one clear line and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Callable, Sequence

import tracekit.commands
from tracekit.errors import TracekitError

Handler = Callable[[argparse.Namespace], int | None]

DESCRIPTION = """\
Observability for AI agents.

Run with no command to start the local collector (OTLP gRPC on 127.0.0.1:4317, HTTP on 127.0.0.1:4318) and the
terminal UI on one DuckDB store. Point any OpenTelemetry SDK at it with
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 and spans appear as they arrive.
"""

EPILOG = """\
environment:
  TRACEKIT_DB                 the store file used when --db is not given
  OTEL_EXPORTER_OTLP_ENDPOINT where `tracekit demo` and tracekit.configure() send, when set

Run `tracekit COMMAND --help` for the options of a command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module found under tracekit/commands/."""
    parser = argparse.ArgumentParser(
        prog="tracekit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(tracekit.commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue   # shared helpers such as _options, not commands
        module = importlib.import_module(f"tracekit.commands.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tracekit-agents")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tracekit` console script."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help", "--version")):
        # No command: collector + TUI in one process; options such as --db belong to `run`.
        arguments.insert(0, "run")
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    try:
        return int(handler(args) or 0)
    except TracekitError as error:
        print(f"tracekit: error: {error}", file=sys.stderr)
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
