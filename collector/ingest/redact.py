"""Redaction before storage: the collector's second line of defence after the in-process processors.

Senders may not run tracekit's redacting processors (another language's SDK, a library that records prompts), so the
collector applies a RedactionPolicy to every JSON attribute map and log body in a decoded batch before it is written.

Most rows hold nothing to mask, so each JSON text is first checked whole: the policy's pattern rules over the text
(each rule has a cheap literal trigger) and a search for secret-like key names. Only rows that might hold something
are parsed, redacted value by value (so key and JSON-path rules apply exactly), and serialized again.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from tracekit import semconv
from tracekit.collector.ingest.decode import decode_payload
from tracekit.collector.ingest.normalize import Batch
from tracekit.redaction import RedactionPolicy

# table -> JSON columns holding sender-supplied values
JSON_COLUMNS = {
    "spans": ("attributes",),
    "span_events": ("attributes",),
    "span_links": ("attributes",),
    "logs": ("attributes", "body"),
    "resources": ("attributes",),
}

# Lowercase fragments of the key names the built-in secret-key rule masks. Searching a whole JSON text for them with
# `in` is a cheap superset check (a case-insensitive regex alternation over the text cost ~250 us per span).
_SECRET_KEY_HINTS = (
    "password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey", "accesstoken", "access_token",
    "access-token", "authtoken", "auth_token", "auth-token", "refreshtoken", "refresh_token", "refresh-token",
    "authorization", "cookie", "privatekey", "private_key", "private-key",
)


class BatchRedactor:
    """Applies one policy to the JSON columns of decoded batches; counts what it masked."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        # User key globs and JSON paths cannot be pre-checked on the text: with them, every row is parsed.
        self._always_parse = bool(policy.secret_keys or policy.json_paths)
        self.masked = 0

    def _might_redact(self, text: str) -> bool:
        if self._always_parse:
            return True
        if self.policy.builtin_key_rule:
            lowered = text.lower()
            if any(hint in lowered for hint in _SECRET_KEY_HINTS):
                return True
        return self.policy.redact_text(text)[1] > 0

    def _redact_json(self, text: str | None) -> tuple[str | None, int]:
        if text is None or not self._might_redact(text):
            return text, 0
        value = orjson.loads(text)
        if isinstance(value, dict):
            redacted, count = self.policy.redact_attributes(value)
        else:  # a log body that is a plain value or a list
            redacted, count = self.policy.redact_value_counted("body", value)
        if not count:
            return text, 0
        return orjson.dumps(redacted).decode(), count

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
                values: list[Any] = table.column(column_name).to_pylist()
                changed_rows: list[int] = []
                for index, text in enumerate(values):
                    new_text, count = self._redact_json(text)
                    if count:
                        values[index] = new_text
                        total += count
                        changed_rows.append(index)
                if changed_rows:
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


def decode_and_redact(signal: str, payload: bytes, redactor: BatchRedactor | None) -> Batch:
    """The decode step with redaction before storage (module-level so worker processes can run it)."""
    batch = decode_payload(signal, payload)
    if redactor is not None:
        redactor.redact(batch)
    return batch
