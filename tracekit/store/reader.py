"""Read access to a store, the same API whether a collector owns the file or not.

DuckDB lets one process open a file read-write. While a collector runs it owns the store, and readers (`tracekit
query`, the TUI, exports) go through its local read API, found in the state file beside the database. With no
collector running they open the file read-only themselves. `open_reader()` picks the right one.

Every path is read-only by construction (tracekit.store.read_only): each query runs in a read-only transaction that
is always rolled back, after a check that it is one SELECT calling only reading functions, and the database has
external file access switched off, so a query can neither write nor reach files outside the store.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, TypeVar

from tracekit.errors import CollectorUnavailable, QueryError, StoreError
from tracekit.files import read_trusted
from tracekit.query import names as query_names
from tracekit.store.paths import resolve_db_path, state_file_for
from tracekit.store.rows import JSON_FIELD_METADATA, Rows, plain_type

# pyarrow is imported where an Arrow table is made: printing a small result (`tracekit query`) needs none, and
# importing it costs such a command more than its query. DuckDB is imported by LocalReader alone (a RemoteReader, the
# TUI's reader while a collector runs, needs none of it), and then only its engine (tracekit/store/engine.py) unless a
# caller asks for Arrow.
if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

T = TypeVar("T")

Params = Sequence[Any] | dict[str, Any] | None

class StoreReader(Protocol):
    """What readers of the store need: run a read-only SQL query and get an Arrow table, or plain rows, back."""

    location: str

    def sql(self, query: str, params: Params = None) -> pa.Table:
        """Run one read-only SELECT; `params` bind `?` (a sequence) or `$name` (a dict) placeholders."""
        ...

    def rows(self, query: str, params: Params = None) -> Rows:
        """Like sql(), as plain Python rows: what a caller that reads values one by one wants, without pyarrow."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


_CHECKED_TEXTS = 1_000  # query texts a reader remembers as checked (parameters vary, the texts repeat)


class LocalReader:
    """Reads through a DuckDB connection in this process (the collector's own database, or a read-only open)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, location: str) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # a DuckDB connection object is not safe to share between threads
        self.location = location
        self._views_ready = False
        self._checked: set[str] = set()  # query texts that passed check_read_only (it depends on the text alone)

    @classmethod
    def open_file(cls, db_path: Path) -> "LocalReader":
        """Open a store file read-only (fails with StoreError if a collector holds it)."""
        from tracekit.store.database import open_store_readonly

        return cls(open_store_readonly(db_path), str(db_path))

    def sql(self, query: str, params: Params = None) -> pa.Table:
        _relational()  # the connection's .sql() and Arrow output come with the duckdb package
        return self._query(query, lambda: self._arrow(self._connection.sql(query, params=params)))

    def rows(self, query: str, params: Params = None) -> Rows:
        """Like sql(), as plain Python rows: fetched by the engine alone (DB-API) when every column's type allows,
        else through Arrow."""
        def fetch() -> Rows | pa.Table:
            cursor = self._connection.execute(query, params)
            names = [column[0] for column in cursor.description]
            types = tuple(str(column[1]) for column in cursor.description)
            if all(plain_type(kind) for kind in types):
                json_columns = frozenset(name for name, kind in zip(names, types) if kind == "JSON")
                return Rows(names, json_columns, cursor.fetchall(), types)
            _relational()
            with warnings.catch_warnings():  # "an extra copy of the rows": cheaper than running the query again
                warnings.simplefilter("ignore", UserWarning)
                return mark_json_columns(cursor.to_arrow_table(), list(types))
        result = self._query(query, fetch)
        return result if isinstance(result, Rows) else Rows.from_arrow(result)

    def answer(self, query: str, params: Params = None) -> Rows | pa.Table:
        """The result as plain rows, with their DuckDB types, when every column's type allows; else as Arrow."""
        _relational()

        def fetch() -> Rows | pa.Table:
            relation = self._connection.sql(query, params=params)
            types = [str(kind) for kind in relation.types]
            if not all(plain_type(kind) for kind in types):
                return self._arrow(relation)
            json_columns = frozenset(name for name, kind in zip(relation.columns, types) if kind == "JSON")
            return Rows(list(relation.columns), json_columns, relation.fetchall(), tuple(types))
        return self._query(query, fetch)

    def _query(self, query: str, run: Callable[[], T]) -> T:
        from tracekit.store.read_only import check_read_only, in_read_only_transaction

        with self._lock:
            if query not in self._checked:  # the TUI and dashboards run the same texts again and again
                check_read_only(query, self._connection)
                if len(self._checked) < _CHECKED_TEXTS:
                    self._checked.add(query)
            if not self._views_ready and _uses_views(query):
                # Installing the views costs about a second per connection: paid only by queries that use them.
                prepare_connection(self._connection)
                self._views_ready = True
            try:
                return in_read_only_transaction(self._connection, run)
            except _engine().Error as error:
                raise QueryError(_clean_duckdb_message(error)) from None

    @staticmethod
    def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
        return mark_json_columns(relation.to_arrow_table(), [str(kind) for kind in relation.types])

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def mark_json_columns(table: pa.Table, duckdb_types: list[str]) -> pa.Table:
    """Tag the Arrow fields of DuckDB JSON columns (KQL `dynamic`), which Arrow would otherwise carry as plain text,
    so printers can show them as JSON values. The tag survives the read API's Arrow IPC stream."""
    if "JSON" not in duckdb_types:
        return table
    import pyarrow as pa

    fields = [field.with_metadata(JSON_FIELD_METADATA) if kind == "JSON" else field
              for field, kind in zip(table.schema, duckdb_types)]
    # The same columns under the tagged schema (Table.cast would import pyarrow.compute for no conversion).
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def _param_json(value: Any) -> Any:
    """Parameters JSON cannot carry (the time bound of `--since`, dashboards' ranges) as text DuckDB casts back
    where they are compared with a timestamp column."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    import decimal

    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"a query parameter of type {type(value).__name__} cannot be sent to the read API")


class RemoteReader:
    """Reads through a running collector's read API (HTTP on 127.0.0.1, bearer token from the state file)."""

    def __init__(self, url: str, token: str, location: str, timeout: float = 60.0) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self.location = location

    def sql(self, query: str, params: Params = None) -> pa.Table:
        table = self._post("/v1/sql", {"sql": query, "params": params})
        assert table is not None
        return table

    def rows(self, query: str, params: Params = None) -> Rows:
        """The collector sends plain-typed results as JSON when asked (no pyarrow needed here), Arrow otherwise."""
        answer = self._post("/v1/sql", {"sql": query, "params": params, "answer": "rows"})
        return answer if isinstance(answer, Rows) else Rows.from_arrow(answer)

    def kql(self, text: str, params: dict[str, Any] | None = None, since_seconds: float | None = None,
            now: str | None = None, *, rows: bool = False) -> pa.Table | Rows | None:
        """Run KQL in the collector, which translates it (its parser warm, its translations cached) and runs the SQL
        on its readers; None when the collector predates this endpoint (then the caller translates). With `rows`,
        plain-typed results come back as Rows (see rows())."""
        body = {"kql": text, "params": params, "since_seconds": since_seconds, "now": now,
                **({"answer": "rows"} if rows else {})}
        try:
            json.dumps(body, default=_param_json)
        except (TypeError, ValueError):
            return None  # parameter values JSON cannot carry: translated here, bound as values
        return self._post("/v1/kql", body, missing_ok=True)

    def _post(self, path: str, body: dict[str, Any], *, missing_ok: bool = False) -> Any:
        import urllib.error  # here, not at the top: a reader of a file needs no HTTP client (nor its ssl import)
        import urllib.request

        request = urllib.request.Request(
            self._url + path,
            data=json.dumps(body, default=_param_json).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                data = response.read()
                if response.headers.get_content_type() == "application/json":
                    return Rows.from_wire(data)
                import pyarrow.ipc

                return pyarrow.ipc.open_stream(data).read_all()
        except urllib.error.HTTPError as error:
            if error.code == 404 and missing_ok:
                return None
            detail = error.read().decode(errors="replace")
            try:
                answer = json.loads(detail)
            except ValueError:
                answer = {"error": detail}
            message = answer.get("error", detail) if isinstance(answer, dict) else detail
            if error.code == 400:
                raise QueryError(message, line=answer.get("line"), column=answer.get("column")) from None
            raise StoreError(f"the collector's read API answered {error.code}: {message}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise CollectorUnavailable(f"the collector at {self._url} did not answer: {error}") from None

    def close(self) -> None:
        pass

    def collector_status(self) -> dict[str, Any]:
        """The collector's counters (GET /v1/status): intake, forwarders, alerts, continuous evaluation."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self._url + "/v1/status",
                                         headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as error:
            raise CollectorUnavailable(f"the collector at {self._url} did not answer: {error}") from None


def _engine() -> Any:
    """DuckDB's engine module (tracekit/store/engine.py), imported on first use."""
    from tracekit.store.engine import duckdb

    return duckdb


def _relational() -> Any:
    """The duckdb package, whose Python layer adds `.sql()` and Arrow output to connections (imported on first use)."""
    from tracekit.store.engine import relational

    return relational()


_view_pattern: re.Pattern[str] | None = None


def _uses_views(query: str) -> bool:
    """Whether `query` may name a query-side view or macro (anything but the store's own tables)."""
    global _view_pattern
    if _view_pattern is None:
        names = sorted(set(query_names.view_names()) - set(query_names.STORE_TABLES), key=len, reverse=True)
        # catalog queries (duckdb_columns(), information_schema) must see the views too
        catalog = r"duckdb_\w+|information_schema|pragma_\w+|tk_\w+"
        _view_pattern = re.compile(r"(?i)\b(?:" + catalog + "|" + "|".join(re.escape(name) for name in names) + r")\b")
    return bool(_view_pattern.search(query))


def prepare_connection(connection: duckdb.DuckDBPyConnection) -> None:
    """Install the query-side views and macros (App Insights-shaped tables, agent helpers) on a reader connection."""
    try:
        if importlib.util.find_spec("tracekit.query.views") is None:
            return
    except ModuleNotFoundError:
        return
    from tracekit.query.views import install

    install(connection)


def _clean_duckdb_message(error: duckdb.Error) -> str:
    return str(error).strip()


def read_state(db_path: Path) -> dict[str, Any] | None:
    """The running collector's state for this store, or None when no live collector owns it."""
    state_path = state_file_for(db_path)
    try:
        # Only a state file this user owns and nobody else can write is trusted: a planted one could send queries,
        # imports and the TUI to someone else's endpoint.
        state = json.loads(read_trusted(state_path))
    except PermissionError as error:
        logging.getLogger("tracekit").warning("tracekit: warning: ignoring the state file %s", error)
        return None
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not _process_alive(pid):
        return None
    # After a crash the pid may belong to another process by now: the start time tells them apart.
    started = state.get("pid_start")
    if started is not None and process_start(pid) not in (None, started):
        return None
    return state


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5); the two before the ")" are pid and comm
    except (OSError, IndexError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_reader(db: str | os.PathLike[str] | None = None) -> StoreReader:
    """A reader for the store at `db` (or the default store): the running collector's API, else the file."""
    db_path = resolve_db_path(db)
    state = read_state(db_path)
    if state and state.get("read_api"):
        return RemoteReader(state["read_api"], state["token"], str(db_path))
    return LocalReader.open_file(db_path)
