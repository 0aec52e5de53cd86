"""`tracekit query`: KQL (or read-only SQL) over the store, printed as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from tracekit.commands._options import add_db_argument, parse_duration
from tracekit.errors import QueryError
from tracekit.query.json_rows import json_value, rows_for_json
from tracekit.store.rows import Rows
from tracekit.terminal_text import clean, clean_json, is_terminal

if TYPE_CHECKING:
    import pyarrow as pa

HELP = "ask the store a question in KQL (Application Insights tables) or read-only SQL"

DESCRIPTION = """\
Run a KQL query over the store and print the result. The Application Insights tables are there, built with the
Azure Monitor exporter's mapping, so a query written for Application Insights runs here unchanged:

  classic:    requests, dependencies, traces, exceptions, customEvents, customMetrics
  workspace:  AppRequests, AppDependencies, AppTraces, AppExceptions, AppEvents, AppMetrics
  native:     spans, span_events, span_links, logs, metric_points, resources
  helpers:    span_agents (the invoke_agent span owning each span), conversations (one row per conversation)

With --sql the text is DuckDB SQL instead: one SELECT (or EXPLAIN [ANALYZE] of one), run in a read-only
transaction that is always rolled back, on a store that cannot reach files or the network, so nothing a query
says can change or leak data. The query runs through the collector's read API
when a collector owns the store, else on the file directly (read-only).

Queries pasted from an Azure Monitor workbook run as they are: {TimeRange:start}, {TimeRange:end} and
{TimeRange:grain} take the --since range (24h when not given) ending now.
"""

EPILOG = """\
examples:
  tracekit query 'dependencies
    | where customDimensions["gen_ai.operation.name"] == "execute_tool"
    | summarize calls = count(), p95 = percentile(duration, 95), errors = countif(success == false)
        by tool = tostring(customDimensions["gen_ai.tool.name"])
    | order by calls desc'
  tracekit query --format json 'AppDependencies | where OperationId == "4bf92f3577b34da6a3ce929d0e0e4736"'
  tracekit query --param model=gpt-4o \\
      'declare query_parameters(model:string); dependencies | where customDimensions["gen_ai.request.model"] == model | count'
  tracekit query --since 1h 'requests | summarize count() by bin(timestamp, 5m)'
  tracekit query --since 24h 'dependencies | where customDimensions["gen_ai.operation.name"] == "invoke_agent"
    | make-series runs = count() on timestamp from {TimeRange:start} to {TimeRange:end} step {TimeRange:grain}
        by agent = tostring(customDimensions["gen_ai.agent.name"])'
  tracekit query --sql 'select name, count(*) from spans group by 1'

See docs/kql.md for the KQL that works locally and what each view holds.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tracekit query` to the CLI."""
    parser = subparsers.add_parser("query", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("text", metavar="QUERY", nargs="?",
                        help="the KQL (or with --sql, SQL) query; '-' or nothing reads it from standard input")
    parser.add_argument("--sql", action="store_true", help="the query is read-only DuckDB SQL, not KQL")
    parser.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table",
                        help="output format (default: table). Stable for scripts: json is one array of row "
                             "objects, jsonl one row object per line, csv a header line then one line per row; "
                             "timestamps are ISO 8601 and dynamic columns JSON values (text in csv)")
    parser.add_argument("--param", metavar="NAME=VALUE", action="append", default=[],
                        help="a value for a `declare query_parameters(...)` parameter (repeatable); "
                             "with --sql, binds $NAME")
    parser.add_argument("--since", metavar="DURATION", default=None,
                        help="only rows from the last DURATION (e.g. 30m, 24h, 7d) of every table the query reads")
    parser.add_argument("--max-rows", metavar="N", type=int, default=1000,
                        help="rows shown by --format table (default 1000; json, jsonl and csv print all)")
    parser.set_defaults(handler=run)


def parse_params(pairs: list[str], kql_text: str | None) -> dict[str, Any]:
    """`name=value` pairs to typed values, using the KQL `declare query_parameters` types when there are any."""
    declared: dict[str, str] = {}
    if kql_text is not None and pairs:  # parsing the query for its declarations costs a KQL parse: only when needed
        import duckdb_kql

        try:
            declared = {p.name: p.type for p in duckdb_kql.query_parameters(kql_text)}
        except Exception:  # a syntax error is reported, with its position, when the query is translated
            declared = {}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise QueryError(f"--param {pair!r}: expected NAME=VALUE")
        if kql_text is not None and declared and name not in declared:
            raise QueryError(f"--param {name}: the query declares no such parameter "
                             f"(it declares: {', '.join(declared) or 'none'})")
        values[name] = _convert(name, raw, declared.get(name, "string"))
    return values


def _convert(name: str, raw: str, kind: str) -> Any:
    try:
        if kind in ("long", "int"):
            return int(raw)
        if kind in ("real", "double", "decimal"):
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
    except ValueError:
        raise QueryError(f"--param {name}={raw!r}: not a valid {kind}") from None
    return raw


def run(args: argparse.Namespace) -> int:
    """Handler of `tracekit query`."""
    from tracekit.store.reader import open_reader

    text = args.text
    if text is None or text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise QueryError("no query given: pass it as an argument or on standard input")
    since = parse_duration(args.since) if args.since else None
    params = parse_params(args.param, None if args.sql else text)
    reader = open_reader(args.db)
    try:
        if args.sql:
            if since is not None:
                raise QueryError("--since applies to KQL queries; in SQL write the time predicate yourself")
            table = reader.rows(text, params or None)
        else:
            from tracekit.query.kql import run_kql_rows  # not imported for --sql: it brings the KQL machinery

            table = run_kql_rows(reader, text, params, since=since)
    finally:
        reader.close()
    write_table(table, args.format, sys.stdout, max_rows=args.max_rows)
    return 0


# --- output -------------------------------------------------------------------------------------------------------
def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(json_value(value))


def write_table(table: pa.Table | Rows, fmt: str, out: Any, *, max_rows: int = 1000) -> None:
    """Print `table` as a table for people, a JSON array, JSON lines or CSV. Cell text is printed literally (no
    markup), with control characters as visible escapes; JSON and CSV keep the data exact, except on a terminal
    (terminal_text.py)."""
    result = table if isinstance(table, Rows) else Rows.from_arrow(table)
    on_terminal = is_terminal(out)
    if fmt == "json":
        text = json.dumps(rows_for_json(result), ensure_ascii=False, indent=2)
        out.write((clean_json(text) if on_terminal else text) + "\n")
        return
    if fmt == "jsonl":
        for row in rows_for_json(result):
            line = json.dumps(row, ensure_ascii=False)
            out.write((clean_json(line) if on_terminal else line) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([clean(name) if on_terminal else name for name in result.columns])
        for row in result.rows:
            cells = [_cell_text(value) for value in row]
            writer.writerow([clean(cell) for cell in cells] if on_terminal else cells)
        return
    # Text() / clean(): span content is never read as markup, and cannot act on the terminal (a table is for people,
    # whatever stdout is).
    header = [clean(name) for name in result.columns]
    body = [[clean(_cell_text(value)) for value in row] for row in result.rows[:max_rows]]
    shown = len(body)
    note = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    if shown < len(result.rows):
        note += f" ({shown} shown; use --max-rows or --format json/csv for all)"
    if not _write_plain_table(header, body, note, out):
        _write_rich_table(header, body, note, out)


# The table drawn as Rich draws it (box.HEAVY_HEAD, one space of padding): top, header, head separator, bottom.
_EDGES = (("┏", "━", "┳", "┓"), ("┃", " ", "┃", "┃"), ("┡", "━", "╇", "┩"), ("└", "─", "┴", "┘"))
_BODY = ("│", " ", "│", "│")


def _write_plain_table(header: list[str], body: list[list[str]], note: str, out: Any) -> bool:
    """Write the table without importing Rich (a tenth of a short command's time) when it is simple: one line of
    printable ASCII per cell, fitting the width Rich would use. Piped, the bytes are Rich's own; on a terminal the
    header is bold and the note dim, as Rich shows them. False when Rich is needed (folding, wide characters)."""
    terminal = _terminal_styles(out)
    if terminal is None or not header:
        return False
    cells = [header, *body]
    if any(not text.isascii() or not text.isprintable() for row in cells for text in row):
        return False
    widths = [max(len(row[index]) for row in cells) for index in range(len(header))]
    if sum(widths) + 3 * len(widths) + 1 > _console_width() or len(note) > _console_width():
        return False
    bold, dim, reset = ("\x1b[1m", "\x1b[2m", "\x1b[0m") if terminal else ("", "", "")

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for width in widths) + right

    def line(texts: list[str], edge: tuple[str, str, str, str], style: str = "") -> str:
        padded = [f" {style}{text}{reset if style else ''}{' ' * (width - len(text))} "
                  for text, width in zip(texts, widths)]
        return edge[0] + edge[2].join(padded) + edge[3]

    lines = [rule(*_EDGES[0]), line(header, _EDGES[1], bold), rule(*_EDGES[2])]
    lines += [line(row, _BODY) for row in body]
    lines += [rule(*_EDGES[3]), f"{dim}{note}{reset}" if terminal else note]
    out.write("\n".join(lines) + "\n")
    return True


def _terminal_styles(out: Any) -> bool | None:
    """Whether to style the plain table (a terminal), False for plain text, None when Rich should decide (settings
    that change what Rich writes)."""
    if any(name in os.environ for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS")):
        return None
    if not is_terminal(out):
        return False
    return os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


def _console_width() -> int:
    """The width Rich's Console uses: $COLUMNS, else the terminal's, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns) or 80
    for descriptor in (0, 1, 2):
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def _write_rich_table(header: list[str], body: list[list[str]], note: str, out: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=False)
    view = Table(show_lines=False, header_style="bold")
    for name in header:
        view.add_column(Text(name), overflow="fold")
    for row in body:
        view.add_row(*(Text(cell) for cell in row))
    console.print(view)
    console.print(Text(note, style="dim"))
