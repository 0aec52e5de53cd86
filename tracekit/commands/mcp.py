"""`tracekit mcp`: serve the store to coding agents over the Model Context Protocol (stdio, or HTTP with a token)."""

from __future__ import annotations

import argparse
import importlib.util
import os

from tracekit.commands._options import add_db_argument
from tracekit.errors import TracekitError

HELP = "serve the traces to coding agents (Claude Code, VS Code, Codex...) as a read-only MCP server"

DESCRIPTION = """\
Run a Model Context Protocol server over the store, so a coding agent can search traces, read a span tree or a
conversation, list recent errors, run read-only KQL/SQL and read dashboards. Every tool is read-only; answers are
sized for a model's context and say how to page.

By default it speaks MCP over stdin/stdout: configure your agent to start `tracekit mcp --db PATH`. With --http it
serves streamable HTTP at http://HOST:PORT/mcp instead, on 127.0.0.1 only, and prints a bearer token at start that
every request must carry (Authorization: Bearer TOKEN).

Tools: search_traces, get_trace, get_span, get_conversation, run_query, list_errors, get_dashboard, get_schema.
Resources: tracekit://schema (tables, columns, types), tracekit://examples (example queries).
The store is read through the collector's read API while a collector runs, else the file read-only.
Needs the MCP SDK: pip install 'tracekit-agents[mcp]'.
"""

EPILOG = """\
examples:
  tracekit mcp --db ~/traces.duckdb                    # stdio, for an agent's MCP configuration
  claude mcp add tracekit -- tracekit mcp --db ~/traces.duckdb
  tracekit mcp --http 127.0.0.1:8765                   # streamable HTTP; prints the token to send

environment:
  TRACEKIT_MCP_TOKEN   the bearer token for --http (default: a new random token each start)

exit status:
  0    the client closed the connection (stdio), or the server was stopped
  1    an unexpected failure (a bug: the traceback says where)
  2    bad usage or input (a non-loopback --http host without --allow-remote), or the MCP SDK is not installed
  130  interrupted (Ctrl-C)

See docs/mcp.md for every tool, its parameters and its answer.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tracekit mcp` to the CLI."""
    parser = subparsers.add_parser("mcp", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("--http", metavar="HOST:PORT", default=None,
                        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (port 0: any free "
                             "port); HOST must be a loopback address unless --allow-remote")
    parser.add_argument("--allow-remote", action="store_true",
                        help="with --http, allow a HOST other machines can reach (the token is then all that "
                             "protects the store)")
    parser.set_defaults(handler=run)


def sdk_available() -> bool:
    """Whether the MCP SDK 2.x is installed (1.x has no mcp.server.mcpserver)."""
    try:
        return importlib.util.find_spec("mcp.server.mcpserver") is not None
    except ModuleNotFoundError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    if not sdk_available():
        raise TracekitError("tracekit mcp needs the MCP Python SDK 2.x, which is not installed: "
                            "pip install 'tracekit-agents[mcp]'")
    if args.allow_remote and not args.http:
        raise TracekitError("--allow-remote applies to --http only")
    from tracekit.mcp_server import build_server, parse_listen, serve_http

    listen = parse_listen(args.http, args.allow_remote) if args.http else None
    server, store = build_server(args.db)
    try:
        if listen is None:
            server.run("stdio")
        else:
            serve_http(server, *listen, os.environ.get("TRACEKIT_MCP_TOKEN") or None)
    finally:
        store.close()
    return 0
