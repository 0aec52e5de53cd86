"""`tracekit mcp`: the store as a Model Context Protocol server, so a coding agent can read traces.

Built on the official `mcp` SDK (2.x, the optional extra `tracekit-agents[mcp]`). Every tool is read-only and returns
a tracekit.readout shape, the same JSON `--format json` prints, as structured content plus compact JSON text (the
conversation as Markdown). Errors come back as tool errors (`isError`) carrying tracekit's own message: a query's
position and reason, an unknown id, a bad argument.

The store is reached as every command reaches it (tracekit.store.reader.open_reader): through the collector's read
API while one runs, else the file read-only. A file reader is closed after a short idle time, so the MCP server
never keeps a collector from starting on the store; a collector that starts or stops meanwhile is noticed on the
next call.

Over HTTP (`--http`) the server answers on 127.0.0.1 only (another address needs --allow-remote) and every request
must carry `Authorization: Bearer <token>`; the token is printed at start.
"""

from __future__ import annotations

import hmac
import json
import secrets
import socket
import sys
import threading
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Callable, Iterator, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from tracekit.errors import TracekitError
from tracekit.readout import catalog, tables, traces, transcript
from tracekit.store.paths import resolve_db_path
from tracekit.store.reader import RemoteReader, StoreReader, open_reader, read_state

IDLE_CLOSE_S = 20.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

INSTRUCTIONS = """\
tracekit holds the OpenTelemetry traces of AI agents (agent runs, model calls, tool calls, hand-offs, evaluations).
Start with search_traces (or list_errors when something failed), then get_trace for a trace's span tree and
get_conversation for what was said. run_query answers anything else in KQL over Application Insights-shaped tables
(read the tracekit://schema and tracekit://examples resources, or call get_schema). Results are cut to fit a context
window: a `page` entry says what was left out and the offset that continues; a cut value names the call
(get_span) that returns it whole.
"""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)

Since = Annotated[str | None, Field(description="only data from this far back: a duration (30m, 24h, 7d), an ISO "
                                                "8601 time (2026-12-06T10:00:00Z), or 'all'")]
Limit = Annotated[int | None, Field(description="most items to return (a default fitting a context window)", ge=1,
                                    le=1000)]
Offset = Annotated[int | None, Field(description="skip this many items: the `next_offset` of the previous page",
                                     ge=0)]
MaxChars = Annotated[int | None, Field(description="character budget of the answer (default 40,000)", ge=1000,
                                       le=400_000)]
TraceId = Annotated[str, Field(description="trace id, 32 hex digits (from search_traces, list_errors or a query's "
                                           "operation_Id)")]


class StoreAccess:
    """One reader shared by the tool calls, reopened when a collector starts or stops, closed when idle."""

    def __init__(self, db: str | None, idle_s: float = IDLE_CLOSE_S) -> None:
        self._db = db
        self._path = resolve_db_path(db)
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._reader: StoreReader | None = None
        self._users = 0
        self._timer: threading.Timer | None = None

    def _stale(self) -> bool:
        collector = read_state(self._path)
        running = bool(collector and collector.get("read_api"))
        return running != isinstance(self._reader, RemoteReader)

    @contextmanager
    def reader(self) -> Iterator[StoreReader]:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._reader is not None and self._users == 0 and self._stale():
                self._reader.close()
                self._reader = None
            if self._reader is None:
                self._reader = open_reader(self._db)
            self._users += 1
            reader = self._reader
        try:
            yield reader
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._timer = threading.Timer(self._idle_s, self._close_if_idle)
                    self._timer.daemon = True
                    self._timer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self._users == 0 and self._reader is not None:
                self._reader.close()
                self._reader = None

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _version() -> str:
    try:
        return version("tracekit-agents")
    except PackageNotFoundError:
        return "unknown"


def _result(data: dict[str, Any], text: str | None = None) -> CallToolResult:
    """Structured content, and the same data as compact JSON text (or `text`) for clients that read text only."""
    body = text if text is not None else json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return CallToolResult(content=[TextContent(type="text", text=body)], structured_content=data)


def build_server(db: str | None) -> tuple[MCPServer, StoreAccess]:
    """The MCP server over the store at `db` (None: the default store), and its store access to close at exit."""
    store = StoreAccess(db)
    server = MCPServer(name="tracekit", title="tracekit traces", instructions=INSTRUCTIONS, version=_version(),
                       log_level="WARNING")

    def call(function: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            with store.reader() as reader:
                return function(reader, *args, **kwargs)
        except (TracekitError, ValueError, LookupError) as error:
            raise ToolError(str(error)) from None

    @server.tool(annotations=READ_ONLY)
    def search_traces(
        since: Since = None,
        until: Annotated[str | None, Field(description="only traces that started before this (same forms as since)")]
        = None,
        agent: Annotated[str | None, Field(description="only traces in which this agent ran (gen_ai.agent.name)")]
        = None,
        errors_only: Annotated[bool, Field(description="only traces with at least one failed span")] = False,
        text: Annotated[str | None, Field(description="only traces with a span whose name or attributes contain "
                                                      "this text (case-insensitive; content when it was recorded)")]
        = None,
        conversation: Annotated[str | None, Field(description="only traces of this conversation id")] = None,
        model: Annotated[str | None, Field(description="only traces that called this model (request or response "
                                                       "model, e.g. gpt-4o)")] = None,
        tool: Annotated[str | None, Field(description="only traces that ran this tool (gen_ai.tool.name)")] = None,
        limit: Limit = None, offset: Offset = None, max_chars: MaxChars = None,
    ) -> CallToolResult:
        """Find traces, newest first: one summary per trace (trace_id, start, root span, agents, models, duration,
        span count, input/output tokens, cost_usd when the store prices calls, failed spans, conversation id).
        Follow up with get_trace(trace_id) for the span tree or get_conversation(trace_id) for what was said."""
        return _result(call(traces.search_traces, since=since, until=until, agent=agent, errors_only=errors_only,
                            text=text, conversation=conversation, model=model, tool=tool, limit=limit,
                            offset=offset, max_chars=max_chars))

    @server.tool(annotations=READ_ONLY)
    def get_trace(trace_id: TraceId, offset: Offset = None, limit: Limit = None, max_chars: MaxChars = None,
                  value_chars: Annotated[int | None, Field(description="characters kept of each attribute value "
                                                                       "(default 500)", ge=20)] = None,
                  ) -> CallToolResult:
        """A trace's spans as a tree, depth first: depth, span_id, parent, name, kind, start offset and duration in
        ms, status and message, operation, agent, model, tool, tokens, attributes and events. Long attribute values
        end with a marker naming the get_span call that returns them whole. Large traces are paged by span."""
        return _result(call(traces.get_trace, trace_id, offset=offset, limit=limit, max_chars=max_chars,
                            value_chars=value_chars))

    @server.tool(annotations=READ_ONLY)
    def get_span(trace_id: TraceId,
                 span_id: Annotated[str, Field(description="span id, 16 hex digits (from get_trace)")],
                 attribute: Annotated[str | None, Field(description="return only this attribute's value, paged by "
                                                                    "characters (e.g. gen_ai.input.messages)")]
                 = None,
                 offset: Annotated[int | None, Field(description="with attribute: the first character to return",
                                                     ge=0)] = None,
                 max_chars: MaxChars = None) -> CallToolResult:
        """One span whole: every attribute, event and link, and its resource (service) attributes. With
        `attribute`, that one value from character `offset`, for values too long for one answer."""
        return _result(call(traces.get_span, trace_id, span_id, attribute=attribute, offset=offset,
                            max_chars=max_chars))

    @server.tool(annotations=READ_ONLY)
    def get_conversation(
        id: Annotated[str, Field(description="a conversation id (gen_ai.conversation.id, session.id, thread_id), a "
                                             "response id (the chain of previous_response_id is followed), or a "
                                             "trace id (or a unique prefix of at least 8 hex digits)")],
        format: Annotated[Literal["markdown", "json"], Field(description="the text content: the transcript as "
                                                                         "Markdown, or the data as JSON")]
        = "markdown",
        offset: Offset = None, limit: Limit = None, max_chars: MaxChars = None,
    ) -> CallToolResult:
        """The conversation as `tracekit replay` shows it: system instructions, user and assistant messages, each
        tool call with its arguments and result, agent hand-offs and multi-agent steps, in order, with tokens and
        latency per model call. Paged by entry; long values are cut with a get_span hint."""
        data = call(transcript.get_conversation, id, offset=offset, limit=limit, max_chars=max_chars)
        return _result(data, transcript.transcript_markdown(data) if format == "markdown" else None)

    @server.tool(annotations=READ_ONLY)
    def run_query(
        query: Annotated[str, Field(description="the query: KQL over the Application Insights tables (requests, "
                                                "dependencies, traces, exceptions, customEvents, customMetrics, "
                                                "App*), the store tables (spans...) and helpers (conversations, "
                                                "span_agents); or one read-only SQL SELECT")],
        language: Annotated[Literal["kql", "sql"], Field(description="kql (default) or sql (DuckDB)")] = "kql",
        since: Annotated[str | None, Field(description="KQL only: only rows from the last DURATION (30m, 24h, 7d) of "
                                                       "every table the query reads")] = None,
        limit: Limit = None, offset: Offset = None, max_chars: MaxChars = None,
    ) -> CallToolResult:
        """Run a read-only query, exactly as `tracekit query` does, and return the columns (name, type) and a page
        of rows. A syntax error, an unknown table or column, or anything but a read comes back as an error with the
        position and the reason. See the tracekit://schema and tracekit://examples resources."""
        return _result(call(tables.run_query, query, language=language, since=since, limit=limit, offset=offset,
                            max_chars=max_chars))

    @server.tool(annotations=READ_ONLY)
    def list_errors(since: Since = "24h", limit: Limit = None, offset: Offset = None,
                    max_chars: MaxChars = None) -> CallToolResult:
        """Recent failures grouped by error type and span name, most frequent first: count, traces, first and last
        seen, agents, an example message and example trace ids to open with get_trace."""
        return _result(call(traces.list_errors, since=since, limit=limit, offset=offset, max_chars=max_chars))

    @server.tool(annotations=READ_ONLY)
    def get_dashboard(
        name: Annotated[str, Field(description="the dashboard; `agents` is the agent overview")] = "agents",
        since: Annotated[str | None, Field(description="time range: a duration (1h, 24h, 7d) or 'all' (default: "
                                                       "the dashboard's own, 24h for agents)")] = None,
    ) -> CallToolResult:
        """A dashboard's tiles as data: each tile's id, title, chart kind, description, KQL and its result (columns
        and rows), as `tracekit dashboards show --format json` prints them."""
        return _result(call(tables.dashboard_data, name, since=since))

    @server.tool(annotations=READ_ONLY)
    def get_schema(table: Annotated[str | None, Field(description="one table or view; all of them when omitted")]
                   = None) -> CallToolResult:
        """The tables and views run_query can read: what each holds, and its columns with types and notes."""
        return _result(call(catalog.describe, table))

    @server.resource("tracekit://schema", name="schema", mime_type="text/markdown",
                     description="The queryable tables and views: what each holds, columns, types and notes")
    def schema_resource() -> str:
        return catalog.schema_markdown(call(catalog.describe))

    @server.resource("tracekit://examples", name="examples", mime_type="text/markdown",
                     description="Example KQL and SQL queries for run_query")
    def examples_resource() -> str:
        return catalog.examples_markdown()

    return server, store


# --- HTTP -------------------------------------------------------------------------------------------------------------
def parse_listen(text: str, allow_remote: bool) -> tuple[str, int]:
    """`HOST:PORT` (or `[::1]:PORT`, or `PORT`) to a host and port; a non-loopback host needs `allow_remote`."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise TracekitError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8765") from None
    if host not in LOOPBACK_HOSTS and not allow_remote:
        raise TracekitError(f"--http {text!r}: {host} is reachable from other machines; the MCP server listens on "
                            "127.0.0.1 only unless you pass --allow-remote (anyone with the token can read the store)")
    return host, number


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (compared in constant time)."""

    def __init__(self, app: Any, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                body = json.dumps({"error": "missing or wrong bearer token: send the token `tracekit mcp --http` "
                                            "printed at start as Authorization: Bearer <token>"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b'Bearer realm="tracekit"'),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self._app(scope, receive, send)


def serve_http(server: MCPServer, host: str, port: int, token: str | None, *, announce: Any = None) -> None:
    """Serve streamable HTTP at http://HOST:PORT/mcp behind the bearer token until interrupted."""
    import anyio
    import uvicorn

    token = token or secrets.token_urlsafe(32)
    loopback = host in LOOPBACK_HOSTS
    security = TransportSecuritySettings(enable_dns_rebinding_protection=loopback,
                                         allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                                         allowed_origins=["http://127.0.0.1:*", "http://localhost:*",
                                                          "http://[::1]:*"])
    app = BearerAuth(server.streamable_http_app(transport_security=security, host=host), token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)  # before the address is announced: a client that connects at once waits, not fails
    except OSError as error:
        listener.close()
        raise TracekitError(f"--http {host}:{port}: cannot listen there ({error.strerror or error})") from None
    bound_port = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    out = announce or sys.stderr
    print(f"tracekit mcp: streamable HTTP at http://{shown}:{bound_port}/mcp", file=out)
    print(f"tracekit mcp: token {token}", file=out)
    print(f"tracekit mcp: send it as the header  Authorization: Bearer {token}", file=out, flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    anyio.run(lambda: uvicorn.Server(config).serve(sockets=[listener]))
