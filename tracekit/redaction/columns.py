"""Redaction of store-shaped tables: every column a sender controls, screened first, masked by the policy.

The collector's decoded batches and the pages an export reads from the store are the same tables (tracekit.store.schema
names the columns), so one function serves both: `TableRedactor.redact_table(name, table)`. Each column is screened
with one RE2 pass over its Arrow buffer (tracekit.redaction.screen); only flagged rows are parsed and handed to the
policy's value function, `RedactionPolicy.redact_value_counted`, so key, JSON-path and pattern rules apply exactly as
they do in the SDK processors.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tracekit import semconv
from tracekit.redaction.jsontext import json_text_masker
from tracekit.redaction.policy import RedactionPolicy
from tracekit.redaction.rules import mask_text
from tracekit.redaction.screen import compiled_screen, flag_rows
from tracekit.redaction.screen import quote as screen_quote

# How a column holds sender text:
MAP = "map"      # JSON of an attribute map: keys and values redacted
ANY = "any"      # JSON of any value (a log body: string, map, list of messages)
TEXT = "text"    # plain text: the pattern rules
# ("attribute", key): plain text copied from the resource attribute `key` (masked as that attribute is)

_SCOPE = {"scope_name": TEXT, "scope_version": TEXT, "service_name": ("attribute", semconv.SERVICE_NAME)}

SENDER_COLUMNS: dict[str, dict[str, Any]] = {
    "spans": {"name": TEXT, "trace_state": TEXT, "status_message": TEXT, **_SCOPE, "attributes": MAP},
    "span_events": {"name": TEXT, "attributes": MAP},
    "span_links": {"trace_state": TEXT, "attributes": MAP},
    "logs": {"severity_text": TEXT, "event_name": TEXT, "body": ANY, **_SCOPE, "attributes": MAP},
    "metric_points": {"metric_name": TEXT, "description": TEXT, "unit": TEXT, "details": MAP, **_SCOPE,
                      "attributes": MAP},
    "resources": {"service_name": ("attribute", semconv.SERVICE_NAME),
                  "service_namespace": ("attribute", semconv.SERVICE_NAMESPACE),
                  "service_instance_id": ("attribute", semconv.SERVICE_INSTANCE_ID),
                  "service_version": ("attribute", semconv.SERVICE_VERSION),
                  "schema_url": TEXT, "attributes": MAP},
}

# Span columns that copy an attribute value (queries filter on them): refreshed from the masked attributes, or, in
# a table read without its attributes, masked as the attribute they copy.
TYPED_COPIES: dict[str, tuple[str, ...]] = {**semconv.TYPED_ATTRIBUTE_COLUMNS, **semconv.TYPED_INTEGER_COLUMNS,
                                            "agent_version": (semconv.GEN_AI_AGENT_VERSION,)}

_RESOURCE_CACHE_SIZE = 1024
_MASKED = mask_text("")[:-1]  # "[REDACTED:", the start of every placeholder


class TableRedactor:
    """Applies one policy to store-shaped Arrow tables; counts what it masked in `masked`."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.masked = 0
        # Every request repeats its sender's resource: remember what redacting each distinct one gave.
        self._resource_results: dict[str, tuple[str | None, int]] = {}
        self._clean_resources: set[tuple[Any, ...]] = set()

    def redact_tables(self, tables: dict[str, pa.Table]) -> int:
        """Mask every table of `tables` in place (the dict's values are replaced); return how many values."""
        before = self.masked
        for name, table in tables.items():
            tables[name] = self.redact_table(name, table)
        return self.masked - before

    def redact_table(self, name: str, table: pa.Table) -> pa.Table:
        """`table` (a store table `name`, any subset of its columns) with every sender-controlled column masked."""
        if self.policy.is_noop or table.num_rows == 0:
            return table
        names = set(table.column_names)
        if name == "resources":
            # Every request repeats its sender's resource: a resource table seen clean before is clean again.
            seen = tuple(tuple(table.column(column).to_pylist()) for column in ("attributes", "schema_url")
                         if column in names)
            if seen in self._clean_resources:
                return table
        masked_before = self.masked
        present = [(column, kind) for column, kind in SENDER_COLUMNS.get(name, {}).items() if column in names]
        json_columns = [(column, kind) for column, kind in present if kind in (MAP, ANY)]
        flagged = {column: flag_rows(self.policy, table.column(column)) for column, _ in json_columns}
        flagged.update(self._flag_plain(table, [column for column, kind in present if kind not in (MAP, ANY)]))
        for column_name, kind in present:
            rows = flagged.get(column_name)
            if rows:
                table = self._mask_rows(table, name, column_name, kind, rows)
        if name == "spans" and "attributes" not in names:
            table = self._mask_typed_copies(table)
        if name == "resources" and self.masked == masked_before and len(self._clean_resources) < _RESOURCE_CACHE_SIZE:
            self._clean_resources.add(seen)
        return table

    def _flag_plain(self, table: pa.Table, columns: list[str]) -> dict[str, list[int]]:
        """The flagged rows of each plain text column, all screened in one pass (the columns end to end, quoted:
        one RE2 call for the lot instead of one per column)."""
        chunks = [(column, chunk) for column in columns for chunk in table.column(column).chunks]
        chunks = [(column, chunk) for column, chunk in chunks if not pa.types.is_null(chunk.type)]  # all empty
        if not chunks:
            return {}
        owners: list[tuple[int, str, int]] = []  # (first row in the joined array, column, first row in the column)
        position, seen = 0, {}
        for column, chunk in chunks:
            owners.append((position, column, seen.get(column, 0)))
            seen[column] = seen.get(column, 0) + len(chunk)
            position += len(chunk)
        joined = pa.concat_arrays([chunk.cast(pa.string()) for _, chunk in chunks])
        starts = [owner[0] for owner in owners]
        result: dict[str, list[int]] = {}
        for index in flag_rows(self.policy, screen_quote(joined), quoted=True):
            first, column, column_first = owners[bisect.bisect_right(starts, index) - 1]
            result.setdefault(column, []).append(column_first + index - first)
        return result

    def _mask_rows(self, table: pa.Table, name: str, column_name: str, kind: Any, rows: list[int]) -> pa.Table:
        column = table.column(column_name)
        mask = self._masker(name, column_name, kind)
        changes: dict[int, Any] = {}
        olds = column.take(pa.array(rows, pa.int64())).to_pylist()  # one conversion, not one scalar per row
        for index, old in zip(rows, olds):
            if old is None:
                continue
            new, count = mask(old)
            if count:
                changes[index] = new
                self.masked += count
        if not changes:
            return table
        table = _replace_rows(table, column_name, changes)
        if name == "spans" and column_name == "attributes":
            table = _refresh_typed_columns(self.policy, table, changes)
        return table

    def _masker(self, table_name: str, column_name: str, kind: Any) -> Callable[[str], tuple[Any, int]]:
        policy = self.policy
        if kind == TEXT:
            return policy.redact_text
        if isinstance(kind, tuple):
            key = kind[1]
            return lambda text: policy.redact_value_counted(key, text)
        if table_name == "resources" and kind == MAP:
            return self._redact_resource
        if kind == ANY:
            return lambda text: _redact_json(policy, text, top_key="body")
        return lambda text: _redact_json(policy, text)

    def _redact_resource(self, text: str) -> tuple[str | None, int]:
        cached = self._resource_results.get(text)
        if cached is None:
            cached = _redact_json(self.policy, text)
            if len(self._resource_results) < _RESOURCE_CACHE_SIZE:
                self._resource_results[text] = cached
        return cached

    def _mask_typed_copies(self, table: pa.Table) -> pa.Table:
        columns = set(table.column_names)
        for column_name, keys in TYPED_COPIES.items():
            if (column_name not in columns or column_name in semconv.TYPED_INTEGER_COLUMNS
                    or pa.types.is_null(table.column(column_name).type)):
                continue
            column = table.column(column_name)
            rows = flag_rows(self.policy, screen_quote(column), quoted=True)
            if not rows:
                continue
            values = column.to_pylist()
            for index in rows:
                if values[index] is not None:
                    values[index], count = self.policy.redact_value_counted(keys[0], values[index])
                    self.masked += count
            table = _replace_column(table, column_name, values)
        return table


def _redact_json(policy: RedactionPolicy, text: str, *, top_key: str | None = None) -> tuple[str, int]:
    """A JSON text redacted: an attribute map key by key, any other value (a log body) under `top_key`. Masked in
    the text itself where that is provably the same (tracekit.redaction.jsontext), else parsed and serialized."""
    if policy._key_decision(top_key or "value") == _PLAIN_KEY:
        masked = json_text_masker(policy).mask(text, text.encode("utf-8", "surrogatepass"))
        if masked is not None:
            return masked
    return redact_json_parsed(policy, text, top_key=top_key)


_PLAIN_KEY = (None, None, ())  # a key's decision when neither it nor its whole value is masked


def redact_json_parsed(policy: RedactionPolicy, text: str, *, top_key: str | None = None) -> tuple[str, int]:
    """`_redact_json` by parsing, masking the decoded values and serializing again (the reference for the text
    form)."""
    value = orjson.loads(text)
    if isinstance(value, dict) and top_key is None:
        redacted, count = policy.redact_attributes(value)
    else:
        redacted, count = policy.redact_value_counted(top_key or "value", value)
    if not count:
        return text, 0
    return orjson.dumps(redacted).decode(), count


def _replace_column(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
    position = table.schema.get_field_index(name)
    field = table.schema.field(name)
    return table.set_column(position, field, pa.array(values, field.type))


def _replace_rows(table: pa.Table, name: str, changes: dict[int, Any]) -> pa.Table:
    """`table` with the rows `changes` names given new values in column `name` (the other rows' values are copied
    by Arrow, never turned into Python objects: a column of message JSON is megabytes)."""
    position = table.schema.get_field_index(name)
    field = table.schema.field(name)
    chunked = table.column(name)
    # (combine_chunks copies even a column of one chunk, as a decoded batch's are)
    column = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
    rows = sorted(changes)
    values = pa.array([changes[row] for row in rows], field.type)
    # The unchanged stretches and the new values, joined with one copy of each buffer (about half the time of
    # replace_with_mask on message columns).
    pieces, last = [], 0
    for index, row in enumerate(rows):
        pieces.append(column.slice(last, row - last))
        pieces.append(values.slice(index, 1))
        last = row + 1
    pieces.append(column.slice(last))
    return table.set_column(position, field, pa.concat_arrays(pieces))


def _refresh_typed_columns(policy: RedactionPolicy, table: pa.Table, changes: dict[int, str]) -> pa.Table:
    """Typed columns copy attribute values: where a row's attributes were masked, its copies are taken again from
    the masked attributes (a column that was empty for the row stays empty)."""
    columns = set(table.column_names)  # (a list Arrow builds anew on every access)
    present = [(name, keys) for name, keys in TYPED_COPIES.items() if name in columns]
    if not present:
        return table
    rows = sorted(changes)
    if _copies_unchanged(policy, table, rows, [name for name, keys in present]):
        return table
    parsed = [orjson.loads(changes[row]) for row in rows]
    for name, keys in present:
        copies: list[tuple[int, Any]] = []
        for row, attributes in zip(rows, parsed):
            value = next((attributes[key] for key in keys if attributes.get(key) is not None), None)
            if name in semconv.TYPED_INTEGER_COLUMNS:
                value = value if isinstance(value, int) and not isinstance(value, bool) else None
            else:
                value = value if value is None or isinstance(value, str) else orjson.dumps(value).decode()
            copies.append((row, value))
        if all(value is None or (isinstance(value, (str, int)) and _MASKED not in str(value)) for _, value in copies):
            # Masking leaves a placeholder in every value it changes and never removes one: these attribute values
            # are as the decoder copied them.
            continue
        current_values = table.column(name).take(pa.array(rows, pa.int64())).to_pylist()  # one conversion
        updates: dict[int, Any] = {}
        for (row, value), current in zip(copies, current_values):
            if current is not None and value != current:
                updates[row] = value
        if updates:
            table = _replace_rows(table, name, updates)
    return table


def _copies_unchanged(policy: RedactionPolicy, table: pa.Table, rows: list[int], names: list[str]) -> bool:
    """Whether masking the attributes of `rows` provably left every typed copy in `names` as it is, without parsing
    the masked attributes (a row of message JSON is kilobytes).

    A copy is the value of the first of its keys that is set, and masking never unsets a value; so when every such
    key is one the policy neither masks whole nor names in a rule, the masked copy is the copy masked as the value it
    copies. That changes nothing when the screen (a superset of the policy over text and JSON text alike) flags no
    copy. Integer copies never change: masking leaves numbers alone."""
    names = [name for name in names if name not in semconv.TYPED_INTEGER_COLUMNS]
    if any(policy._key_decision(key) != _PLAIN_KEY for name in names for key in TYPED_COPIES[name]):
        return False
    screen = compiled_screen(policy)
    if screen is None:
        return False
    # A few hundred short values, each in quotes, end to end: one RE2 search for them all (a match can only run
    # across two values by flagging too much, never hide one inside a value).
    values = [value for name in names for value in _string_values(table.column(name), rows)]
    return screen.search(b'"' + b'""'.join(values) + b'"') is None


def _string_values(column: pa.ChunkedArray, rows: list[int]) -> list[bytes | memoryview]:
    """The UTF-8 values of `rows` in a string column, as slices of its data buffer where it has one chunk (a null
    row gives whatever bytes its offsets span: at most a few, screened for nothing but a false alarm)."""
    if pa.types.is_null(column.type):
        return []
    if column.num_chunks != 1 or not pa.types.is_string(column.type):
        taken = column.take(pa.array(rows, pa.int64())).to_pylist()
        return [value.encode("utf-8", "surrogatepass") for value in taken if value is not None]
    chunk = column.chunk(0)
    _, offsets_buffer, data_buffer = chunk.buffers()
    if data_buffer is None:
        return []
    offsets = memoryview(offsets_buffer).cast("i")[chunk.offset:chunk.offset + len(chunk) + 1]
    data = memoryview(data_buffer)
    return [data[offsets[row]:offsets[row + 1]] for row in rows]
