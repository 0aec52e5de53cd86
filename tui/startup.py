"""How `tracekit tui` starts: the store is opened and the first page queried in a thread while Textual is imported.

This module imports neither DuckDB nor Textual: `import duckdb` (a large extension module and its Python layer) and
the store's open run in the thread, beside Textual's import on the main thread, and the first page's query
(`FirstPage`) starts as soon as the store is open. Imports take turns on the GIL, but each gives it up while it
waits for the disk and the dynamic loader, so the two overlap somewhat on two cores (see docs/tui.md, Performance).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracekit.store.reader import StoreReader
    from tracekit.tui.data import FirstPage


class Startup:
    """Open the store at `db` and start its first page in a thread; `result()` waits and raises what opening raised."""

    def __init__(self, db: str | os.PathLike[str] | None) -> None:
        self._reader: StoreReader | None = None
        self._first_page: FirstPage | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, args=(db,), name="tracekit-open-store", daemon=True)
        self._thread.start()

    def _open(self, db: str | os.PathLike[str] | None) -> None:
        try:
            from tracekit.store.reader import open_reader
            from tracekit.tui.data import FirstPage

            self._reader = open_reader(db)
            self._first_page = FirstPage(self._reader)
        except BaseException as error:  # raised on the main thread by result()
            self._error = error

    def result(self) -> tuple[StoreReader, FirstPage]:
        """The open reader and its first page (being queried); raises what opening the store raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._reader is not None and self._first_page is not None
        return self._reader, self._first_page
