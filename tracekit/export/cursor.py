"""Export cursors: how far an export (one selection to one destination) has got, kept across runs.

A cursor holds the last span fully delivered, in the store's order (ingest_seq, trace_id, span_id), plus the items
already delivered from the batch in flight (so a batch cut short by a failure is finished without resending what
was accepted), plus the retime shift chosen on the first run (so a resumed export lands on the same timeline).

Two homes, one format:
* `SidecarCursorStore`: `<db>.export-state.json` beside the store, replaced atomically (write, fsync, rename) under
  an advisory lock. `tracekit export` uses it: it only ever reads the store, which a running collector may own.
* `TableCursorStore`: the store's `export_cursors` table (schema v2), written by the process that owns the store.
  The collector's forwarders use it, so forwarding progress travels with the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import orjson

from tracekit.files import open_private, write_private_atomically
from tracekit.store.reader import StoreReader

StoreKey = tuple[int, str, str]


def cursor_id(destination: str, selection: str) -> str:
    """A short stable id for (destination, selection)."""
    return hashlib.sha256(f"{destination}\n{selection}".encode()).hexdigest()[:20]


@dataclass
class CursorRecord:
    """What one cursor remembers."""

    destination: str
    selection: str
    position: StoreKey | None = None
    delivered: set[str] = field(default_factory=set)   # item keys accepted beyond `position`
    refused: dict[str, list[Any]] = field(default_factory=dict)   # item key -> [status, reason], final
    pending: dict[str, Any] = field(default_factory=dict)   # item key -> what to resend (an envelope) or None
    retime_offset_ns: int | None = None
    totals: dict[str, int] = field(default_factory=dict)

    def known(self, key: str) -> bool:
        """Whether the item was already delivered, refused for good, or is waiting to be resent."""
        return key in self.delivered or key in self.refused or key in self.pending

    def finish_batch(self, keys: list[StoreKey]) -> None:
        """The batch of spans `keys` (in store order) is done: move the position past it and forget its items.

        Items of spans outside the batch stay: a resumed run may cut batches differently (another --batch-size)."""
        self.position = keys[-1]
        spans = {f"{seq}:{trace_id}:{span_id}" for seq, trace_id, span_id in keys}
        logs = {f"log:{trace_id}:{span_id}:" for _, trace_id, span_id in keys}

        def in_batch(item: str) -> bool:
            if item.startswith("log:"):
                return item[:4 + 32 + 1 + 16 + 1] in logs
            return item.split("#", 1)[0] in spans

        for items in (self.delivered, self.refused, self.pending):
            for item in [item for item in items if in_batch(item)]:
                if isinstance(items, set):
                    items.discard(item)
                else:
                    items.pop(item)

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "selection": self.selection,
                "position": list(self.position) if self.position else None, "delivered": sorted(self.delivered),
                "refused": self.refused, "pending": self.pending,
                "retime_offset_ns": self.retime_offset_ns, "totals": self.totals, "updated_at": time.time()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CursorRecord":
        position = data.get("position")
        return cls(destination=data["destination"], selection=data["selection"],
                   position=(int(position[0]), str(position[1]), str(position[2])) if position else None,
                   delivered=set(data.get("delivered") or ()), refused=dict(data.get("refused") or {}),
                   pending=dict(data.get("pending") or {}), retime_offset_ns=data.get("retime_offset_ns"),
                   totals=dict(data.get("totals") or {}))


class CursorStore(Protocol):
    """Where cursors are kept."""

    def load(self, key: str) -> CursorRecord | None:
        """The cursor with this id, or None."""
        ...

    def save(self, key: str, record: CursorRecord) -> None:
        """Persist the cursor durably before returning."""
        ...

    def delete(self, key: str) -> None:
        """Forget the cursor (the next export starts from the beginning)."""
        ...


def sidecar_path(db_path: Path) -> Path:
    """The export state file beside a store."""
    return db_path.with_name(db_path.name + ".export-state.json")


class SidecarCursorStore:
    """Cursors in a JSON file beside the store; safe against crashes (atomic replace) and concurrent exports
    (an advisory lock around each read-modify-write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open_private(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"version": 1, "cursors": {}}
        except orjson.JSONDecodeError:
            # A damaged state file must not stop exports; keep it aside for inspection and start afresh.
            self.path.replace(self.path.with_name(self.path.name + ".damaged"))
            return {"version": 1, "cursors": {}}
        data.setdefault("cursors", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        write_private_atomically(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def load(self, key: str) -> CursorRecord | None:
        data = self._read()
        record = data["cursors"].get(key)
        return CursorRecord.from_json(record) if record else None

    def save(self, key: str, record: CursorRecord) -> None:
        with self._locked():
            data = self._read()
            data["cursors"][key] = record.to_json()
            self._write(data)

    def delete(self, key: str) -> None:
        with self._locked():
            data = self._read()
            if data["cursors"].pop(key, None) is not None:
                self._write(data)

    def all(self) -> dict[str, CursorRecord]:
        """Every cursor in the file, by id."""
        return {key: CursorRecord.from_json(value) for key, value in self._read()["cursors"].items()}


class TableCursorStore:
    """Cursors in the store's `export_cursors` table.

    `write` runs a function with the owning process's read-write connection (for the collector:
    `collector.writer.run_exclusive`); `reader` reads the table back.
    """

    def __init__(self, write: Callable[[Callable[[Any], None]], None], reader: StoreReader) -> None:
        self._write = write
        self._reader = reader

    def load(self, key: str) -> CursorRecord | None:
        table = self._reader.sql("SELECT state FROM export_cursors WHERE cursor_id = ?", [key])
        if table.num_rows == 0:
            return None
        return CursorRecord.from_json(orjson.loads(table.column("state")[0].as_py()))

    def save(self, key: str, record: CursorRecord) -> None:
        state = orjson.dumps(record.to_json()).decode()
        position = record.position or (None, None, None)

        def upsert(con: Any) -> None:
            con.execute(
                "INSERT OR REPLACE INTO export_cursors VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                [key, record.destination, record.selection, position[0], position[1], position[2], state])

        self._write(upsert)

    def delete(self, key: str) -> None:
        self._write(lambda con: con.execute("DELETE FROM export_cursors WHERE cursor_id = ?", [key]))
