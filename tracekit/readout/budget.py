"""Budgets for machine readers: how much one call returns, how long values are cut, and how to page.

A model reading a tool result pays for every character, and a single stored prompt can be megabytes. Every shape is
therefore built under a row limit and a character budget; what does not fit is left out *visibly*: cut values end
with a marker naming the call that returns them whole, and a cut list carries a `page` entry with the offset that
continues it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import orjson

DEFAULT_ROWS = 50  # rows (traces, spans, query rows, entries) per call unless the caller asks for more
MAX_ROWS = 1000
DEFAULT_CHARS = 40_000  # characters of JSON per call, roughly 10k tokens
MAX_CHARS = 400_000
VALUE_CHARS = 500  # a single attribute value inside a list (trace tree, query row) before it is cut


def json_size(value: Any) -> int:
    """Characters `value` takes as compact JSON."""
    return len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str))


def clamp(value: int | None, default: int, maximum: int, name: str) -> int:
    """A caller's limit, defaulted and bounded; a non-positive one is refused."""
    if value is None:
        return default
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (got {value})")
    return min(value, maximum)


def check_offset(offset: int | None) -> int:
    """A caller's offset (None is 0); a negative one is refused."""
    if offset is None:
        return 0
    if offset < 0:
        raise ValueError(f"offset must be 0 or more (got {offset})")
    return offset


def cut(value: Any, limit: int | None, how_to_get: str) -> Any:
    """`value` when it is short, else its first `limit` characters and a marker saying how to get it whole.

    Non-string values (lists, objects) are measured and cut as their JSON text.
    """
    if limit is None:
        return value
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS,
                                                             default=str).decode()
    if len(text) <= limit:
        return value
    return f"{text[:limit]}… [cut: {limit:,} of {len(text):,} characters; {how_to_get} returns it whole]"


def is_cut(value: Any) -> bool:
    """Whether `value` carries a cut marker."""
    return isinstance(value, str) and value.endswith(" returns it whole]") and "… [cut: " in value


def page(items: Iterable[Any], *, offset: int, limit: int, max_chars: int, total: int | None,
         what: str, continue_with: Callable[[int], str] | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Take items (already starting at `offset`) while both budgets hold; at least one item is always taken.

    Returns the items and the `page` entry: `offset`, `returned`, `total` (when known), `next_offset` (None at
    the end) and, when something was left out, a `note` saying why and how to continue.
    """
    taken: list[Any] = []
    used = 0
    stopped_by = None
    more = False
    for item in items:
        if len(taken) >= limit:
            stopped_by, more = "row", True
            break
        size = json_size(item) + 1
        if taken and used + size > max_chars:
            stopped_by, more = "character", True
            break
        taken.append(item)
        used += size
    if total is not None and offset + len(taken) < total:
        more = True
        stopped_by = stopped_by or "row"
    info: dict[str, Any] = {"offset": offset, "returned": len(taken), "total": total,
                            "next_offset": offset + len(taken) if more else None}
    if more:
        budget = f"the {limit}-{what} limit" if stopped_by == "row" else f"the {max_chars:,}-character budget"
        of_total = f" of {total:,}" if total is not None else ""
        how = continue_with(offset + len(taken)) if continue_with else f"call again with offset={offset + len(taken)}"
        plural = what[:-1] + "ies" if what.endswith("y") else what + "s"
        info["note"] = (f"showing {plural} {offset + 1}-{offset + len(taken)}{of_total} ({budget} stopped here); "
                        f"{how} for more")
    return taken, info
