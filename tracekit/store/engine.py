"""DuckDB's compiled engine, without the duckdb package's Python layer until something needs that layer.

`import duckdb` loads the compiled engine (the `_duckdb` module the package re-exports) and then the package's Python
layer: the relational and expression API, its Arrow sources, its version read through importlib.metadata. The layer
is most of the import's cost (about 90 ms of CPU against about 20 ms for the engine), and opening a store and fetching
rows (DB-API `execute`, `description`, `fetchall`) do not use it: the TUI's first paint and `tracekit query --sql`
need only the engine. The store's modules therefore name the engine `duckdb`: the same `connect()`, connection class,
exceptions and statement types as the package's. `relational()` imports the package, which adds its methods
(`.sql()`, Arrow output) to that connection class; call it before using them.
"""

from __future__ import annotations

from types import ModuleType

try:
    import _duckdb as duckdb
except ImportError:  # a duckdb release without a separate engine module: the package is all there is
    import duckdb

__all__ = ["duckdb", "relational"]


def relational() -> ModuleType:
    """The duckdb package (imported on first use): the relational API and Arrow output on every connection."""
    import duckdb as package

    return package
