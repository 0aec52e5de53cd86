"""Redaction before storage: the collector's second line of defence after the in-process processors.

Senders may not run tracekit's redacting processors (another language's SDK, a library that records prompts), so the
collector applies a RedactionPolicy to every JSON attribute map and log body in a decoded batch before it is written.

Most rows hold nothing to mask, so each column is screened first (tracekit.redaction_screen, one RE2 pass in C);
only flagged rows are parsed, redacted value by value by the policy itself (so key and JSON-path rules apply
exactly), and serialized again.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from tracekit import semconv
from tracekit.collector.processors.normalize import Batch
from tracekit.redaction import RedactionPolicy
from tracekit.redaction_screen import flag_rows

# table -> JSON columns holding sender-supplied values
JSON_COLUMNS = {
    "spans": ("attributes",),
    "span_events": ("attributes",),
    "span_links": ("attributes",),
    "logs": ("attributes", "body"),
    "resources": ("attributes",),
}

class BatchRedactor:
    """Applies one policy to the JSON columns of decoded batches; counts what it masked."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.masked = 0
        # Every request repeats its sender's resource: remember what redacting each distinct one gave.
        self._resource_results: dict[str, tuple[str | None, int]] = {}

    def _redact_resource(self, text: str | None) -> tuple[str | None, int]:
        if text is None:
            return text, 0
        cached = self._resource_results.get(text)
        if cached is None:
            cached = self._redact_json(text)
            if len(self._resource_results) < 1024:
                self._resource_results[text] = cached
        return cached

    def _redact_json(self, text: str | None) -> tuple[str | None, int]:
        if text is None:
            return text, 0
        value = orjson.loads(text)
        if isinstance(value, dict):
            redacted, count = self.policy.redact_attributes(value)
        else:  # a log body that is a plain value or a list
            redacted, count = self.policy.redact_value_counted("body", value)
        if not count:
            return text, 0
        return orjson.dumps(redacted).decode(), count

    def process(self, signal: str, batch: Batch) -> Batch:
        self.redact(batch)
        return batch

    def redact(self, batch: Batch) -> int:
        """Mask in place (replacing the affected Arrow columns); return how many values were masked."""
        if self.policy.is_noop:
            return 0
        total = 0
        for table_name, columns in JSON_COLUMNS.items():
            table = batch.tables.get(table_name)
            if table is None:
                continue
            for column_name in columns:
                column = table.column(column_name)
                rows = flag_rows(self.policy, column)
                if not rows:
                    continue
                values: list[Any] | None = None
                changed_rows: list[int] = []
                redact_one = self._redact_resource if table_name == "resources" else self._redact_json
                for index in rows:
                    new_text, count = redact_one(column[index].as_py())
                    if count:
                        if values is None:
                            values = column.to_pylist()
                        values[index] = new_text
                        total += count
                        changed_rows.append(index)
                if values is not None:
                    table = _replace_column(table, column_name, values)
                    if table_name == "spans" and column_name == "attributes":
                        table = _refresh_typed_columns(table, values, changed_rows)
            batch.tables[table_name] = table
        self.masked += total
        batch.masked += total
        return total


def _replace_column(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
    position = table.schema.get_field_index(name)
    return table.set_column(position, name, pa.array(values, table.schema.field(name).type))


def _refresh_typed_columns(table: pa.Table, attributes: list[str], rows: list[int]) -> pa.Table:
    """Typed columns copy attribute values: where an attribute was masked, the copy must be masked too."""
    columns = {**semconv.TYPED_ATTRIBUTE_COLUMNS, **semconv.TYPED_INTEGER_COLUMNS}
    for name, keys in columns.items():
        values = table.column(name).to_pylist()
        for row in rows:
            parsed = orjson.loads(attributes[row])
            value = next((parsed[key] for key in keys if parsed.get(key) is not None), None)
            if name in semconv.TYPED_INTEGER_COLUMNS:
                values[row] = value if isinstance(value, int) and not isinstance(value, bool) else None
            else:
                values[row] = value if value is None or isinstance(value, str) else orjson.dumps(value).decode()
        table = _replace_column(table, name, values)
    return table
