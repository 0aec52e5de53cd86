"""Redaction before storage: the collector's second line of defence after the in-process processors.

Senders may not run tracekit's redacting processors (another language's SDK, a library that records prompts), so the
collector applies a RedactionPolicy to every JSON attribute map and log body in a decoded batch before it is written.

Most rows hold nothing to mask, so a whole column is first screened with one RE2 regex through pyarrow.compute (in
C, about 1 us per row): the literal triggers of the policy's pattern rules, the digit runs the number rule looks at,
and secret-like key names. It is a superset check: only rows it flags are parsed, redacted value by value by the
policy itself (so key and JSON-path rules apply exactly), and serialized again. Measured on the ingest benchmark's
rows: running the policy's rules on every JSON text in Python cost 20-90 us per row.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tracekit import semconv
from tracekit.collector.ingest.decode import decode_payload
from tracekit.collector.ingest.normalize import Batch
from tracekit.redaction import NumberRule, PatternRule, RedactionPolicy

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


SCREEN_MIN_ROWS = 32

_RE2_SPECIAL = set("\\.^$|?*+()[]{}")


def _literal(text: str) -> str:
    """`text` as an RE2 literal."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)


def _accepted_by_re2(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _strip_lookarounds(pattern: str) -> str:
    """`pattern` without (?=..), (?!..), (?<=..), (?<!..) groups: RE2 has none, and dropping them only widens."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), index):
            depth, in_class, cursor = 0, False, index
            while cursor < len(pattern):
                char = pattern[cursor]
                if char == "\\":
                    cursor += 2
                    continue
                if in_class:
                    in_class = char != "]"
                elif char == "[":
                    in_class = True
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                    if depth == 0:
                        break
                cursor += 1
            index = cursor + 1
            continue
        if pattern[index] == "\\":
            out.append(pattern[index:index + 2])
            index += 2
            continue
        out.append(pattern[index])
        index += 1
    return "".join(out)


def _rule_screen(regex: "re.Pattern[str]") -> str | None:
    flags = ("i" if regex.flags & re.IGNORECASE else "") + ("s" if regex.flags & re.DOTALL else "")
    candidate = _strip_lookarounds(regex.pattern)
    if flags:
        candidate = f"(?{flags}){candidate}"
    return candidate if _accepted_by_re2(candidate) else None


def screening_pattern(policy: RedactionPolicy) -> str | None:
    """One RE2 regex matching (at least) every text the policy could change; None when no such regex exists.

    Each rule contributes its own regex with lookarounds removed (a wider match, so still a superset), or, when RE2
    cannot run that, its literal triggers.
    """
    if policy.secret_keys or policy.json_paths:
        return None  # key globs and JSON paths depend on structure, not on text
    parts: list[str] = []
    for rule in policy.rules:
        regexes = [rule._CARD, rule._PHONE] if isinstance(rule, NumberRule) else [getattr(rule, "regex", None)]
        for regex in regexes:
            screen = _rule_screen(regex) if regex is not None else None
            if screen is None and isinstance(rule, PatternRule) and rule.triggers:
                literals = "|".join(_literal(trigger) for trigger in rule.triggers)
                screen = f"(?i:{literals})" if rule.fold else literals
            if screen is None:
                return None  # a rule neither RE2 nor its triggers can screen: every row goes through the policy
            parts.append(screen)
    if policy.builtin_key_rule:
        parts.append("(?i:" + "|".join(_literal(hint) for hint in _SECRET_KEY_HINTS) + ")")
    return "|".join(f"(?:{part})" for part in parts) if parts else None


class BatchRedactor:
    """Applies one policy to the JSON columns of decoded batches; counts what it masked."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._screen = screening_pattern(policy)
        self.masked = 0

    def _rows_to_check(self, column: pa.ChunkedArray) -> list[int]:
        # pyarrow compiles the RE2 pattern on every call (~0.7 ms): a handful of rows is cheaper to check directly.
        if self._screen is None or len(column) < SCREEN_MIN_ROWS:
            return list(range(len(column)))
        flagged = pc.fill_null(pc.match_substring_regex(column, self._screen), False)
        return pc.indices_nonzero(flagged).to_pylist()

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
                rows = self._rows_to_check(column)
                if not rows:
                    continue
                values: list[Any] | None = None
                changed_rows: list[int] = []
                for index in rows:
                    new_text, count = self._redact_json(column[index].as_py())
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


def decode_and_redact(signal: str, payload: bytes, redactor: BatchRedactor | None) -> Batch:
    """The decode step with redaction before storage (module-level so worker processes can run it)."""
    batch = decode_payload(signal, payload)
    if redactor is not None:
        redactor.redact(batch)
    return batch
