"""OTLP AnyValue / KeyValue lists to plain Python values, the form stored as JSON.

Mapping: string, bool, int and double map to themselves; arrays to lists; key-value lists to objects; bytes to
base64 strings (what OTLP/JSON does). Non-finite doubles become strings ("NaN", "Infinity") because JSON has no
literal for them. Nesting deeper than MAX_DEPTH is refused: a hostile request must not exhaust the stack.
"""

from __future__ import annotations

import base64
import math
from typing import Any

MAX_DEPTH = 32


class InvalidValue(ValueError):
    """An attribute value that cannot be stored (too deeply nested)."""


def any_value(value: Any, depth: int = 0) -> Any:
    """One AnyValue message to a JSON-ready Python value (None when unset)."""
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
        return [any_value(item, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def key_values(attributes: Any) -> dict[str, Any]:
    """A repeated KeyValue field to a dict (the last value wins for a repeated key, as in the OTel SDKs)."""
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
