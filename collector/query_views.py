"""The query views, created in the store a few seconds after the collector starts.

`tracekit query`, the TUI and the read API read the App Insights-shaped views (tracekit.query.views). Creating them
costs about a second of DuckDB binding, once per tracekit version: done in the store, every later reader finds them
ready. It runs on its own cursor a few seconds after start, so the collector is up at once and one that lives only a
moment (a test, a one-off import) never pays it; readers meanwhile create them on their own connection. Stopping the
collector interrupts an installation under way (it is one transaction, rolled back).
"""

from __future__ import annotations

import logging
import threading

import duckdb

from tracekit.query.views import install_in_store
from tracekit.store.database import store_cursor

log = logging.getLogger("tracekit.collector")

VIEWS_DELAY_SECONDS = 3.0


class ViewsInstaller:
    """Creates the views in the store on a background thread, `delay` seconds after start()."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, delay: float = VIEWS_DELAY_SECONDS) -> None:
        self.installed = threading.Event()  # set once the store holds this version's views
        self._connection = connection
        self._delay = delay
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._thread = threading.Thread(target=self._run, name="tracekit-views", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        if self._stopping.wait(self._delay):
            return
        with self._lock:
            if self._stopping.is_set():
                return
            self._cursor = store_cursor(self._connection)
        try:
            install_in_store(self._cursor)
            self.installed.set()
        except duckdb.Error as error:
            if not self._stopping.is_set():
                log.warning("could not create the query views in the store (readers create their own): %s", error)
        finally:
            with self._lock:
                self._cursor.close()
                self._cursor = None

    def stop(self) -> None:
        """Stop waiting, interrupt an installation under way, and wait for the thread."""
        self._stopping.set()
        with self._lock:
            if self._cursor is not None:
                self._cursor.interrupt()
        if self._thread.is_alive():
            self._thread.join()
