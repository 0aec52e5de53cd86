"""OTLP AnyValue / KeyValue lists to plain Python values, the form stored as JSON.

Mapping: string, bool, int and double map to themselves; arrays to lists; key-value lists to objects; bytes to
base64 strings (what OTLP/JSON does). Non-finite doubles become strings ("NaN", "Infinity") because JSON has no
literal for them. Nesting deeper than MAX_DEPTH is refused: a hostile request must not exhaust the stack.

Attribute count limits work as in the OpenTelemetry SDK: an attribute map (a span's, event's, link's, log record's,
or a kvlist value) keeps its first `limit` distinct keys, later values of a kept key still replace its value, and
every other KeyValue is dropped unread and counted, for `dropped_attributes_count`.
"""

from __future__ import annotations

import base64
import math
from typing import Any, NamedTuple

MAX_DEPTH = 32
DEFAULT_ATTRIBUTE_COUNT_LIMIT = 128  # the OpenTelemetry SDK's default (OTEL_ATTRIBUTE_COUNT_LIMIT)
UNLIMITED = 2**62


class AttributeLimits(NamedTuple):
    """Attribute count limits per attribute map; `kvlist` is for map values nested in attributes."""

    span: int = DEFAULT_ATTRIBUTE_COUNT_LIMIT
    event: int = DEFAULT_ATTRIBUTE_COUNT_LIMIT
    link: int = DEFAULT_ATTRIBUTE_COUNT_LIMIT
    log_record: int = DEFAULT_ATTRIBUTE_COUNT_LIMIT
    kvlist: int = DEFAULT_ATTRIBUTE_COUNT_LIMIT


class Dropped:
    """Counts the KeyValues the limits dropped while one item is read (nested kvlists included)."""

    __slots__ = ("count", "kvlist_limit")

    def __init__(self, kvlist_limit: int, count: int = 0) -> None:
        self.kvlist_limit = kvlist_limit
        self.count = count


class InvalidValue(ValueError):
    """An attribute value that cannot be stored (too deeply nested)."""


def any_value(value: Any, depth: int = 0, dropped: Dropped | None = None) -> Any:
    """One AnyValue message to a JSON-ready Python value (None when unset); kvlists limited as `dropped` says."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number).replace("inf", "Infinity").replace("nan", "NaN")
    if which == "bool_value":
        return value.bool_value
    if which is None:
        return None
    if depth >= MAX_DEPTH:
        raise InvalidValue(f"attribute value nested deeper than {MAX_DEPTH} levels")
    if which == "array_value":
        return [any_value(item, depth + 1, dropped) for item in value.array_value.values]
    if which == "kvlist_value":
        if dropped is None:
            return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
        return _limited(value.kvlist_value.values, dropped.kvlist_limit, dropped, depth)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def key_values(attributes: Any, limit: int | None = None, dropped: Dropped | None = None) -> dict[str, Any]:
    """A repeated KeyValue field to a dict (the last value wins for a repeated key, as in the OTel SDKs); with
    `limit`, only the first `limit` distinct keys, the rest counted in `dropped`."""
    if limit is not None and dropped is not None:
        return _limited(attributes, limit, dropped, 0)  # values at depth 1, as below
    result: dict[str, Any] = {}
    for kv in attributes:
        value = kv.value
        which = value.WhichOneof("value")
        # The scalar cases inline: this loop runs for every attribute of every span.
        if which == "string_value":
            result[kv.key] = value.string_value
        elif which == "int_value":
            result[kv.key] = value.int_value
        elif which == "bool_value":
            result[kv.key] = value.bool_value
        else:
            result[kv.key] = any_value(value, 1)
    return result


def _limited(attributes: Any, limit: int, dropped: Dropped, depth: int) -> dict[str, Any]:
    """`key_values` with the count limit, values at `depth + 1`. Like the compiled decoder: a value that a later
    one of the same key replaces is only checked for depth, and values of dropped keys are never read."""
    kvs = list(attributes)
    final: dict[str, int] = {}  # kept key -> index of its last KeyValue, in order of first occurrence
    for index, kv in enumerate(kvs):
        key = kv.key
        if key in final:
            final[key] = index
        elif len(final) >= limit:
            dropped.count += 1
        else:
            final[key] = index
    for index, kv in enumerate(kvs):
        if final.get(kv.key, index) != index:
            _check_depth(kv.value, depth + 1)
    result: dict[str, Any] = {}
    for key, index in final.items():
        value = kvs[index].value
        which = value.WhichOneof("value")
        if which == "string_value":
            result[key] = value.string_value
        elif which == "int_value":
            result[key] = value.int_value
        elif which == "bool_value":
            result[key] = value.bool_value
        else:
            result[key] = any_value(value, depth + 1, dropped)
    return result


def _check_depth(value: Any, depth: int) -> None:
    """Raise InvalidValue where `any_value` would, without building anything."""
    which = value.WhichOneof("value")
    if which in (None, "string_value", "int_value", "double_value", "bool_value"):
        return
    if depth >= MAX_DEPTH:
        raise InvalidValue(f"attribute value nested deeper than {MAX_DEPTH} levels")
    if which == "array_value":
        for item in value.array_value.values:
            _check_depth(item, depth + 1)
    elif which == "kvlist_value":
        for kv in value.kvlist_value.values:
            _check_depth(kv.value, depth + 1)
