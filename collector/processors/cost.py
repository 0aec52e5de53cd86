"""Cost: the `cost_usd` column of each decoded span, priced from its tokens (tracekit.cost) before it is stored.

Runs after redaction in the processor list, on the decode thread, so it must cost little per span. Only rows with
tokens are looked at, and their prices are worked out once per group: the rows are grouped by what decides a price
(operation, provider, response and request model, day), each group's per-token rates are looked up once
(`tracekit.cost.call_rates`) and a row is then four multiplications, in `price_call`'s own order (the same result to
the bit). A row goes through `price_call` itself only when that could differ: its attributes mention cache or
reasoning token keys (then they are parsed, as only they hold those counts), its start time is within a millisecond of
midnight (where the day `price_call` computes in floating point may be the neighbouring one), or its model's price is
not linear. Every other row gets NULL.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import re2

from tracekit import cost
from tracekit.collector.processors.normalize import Batch
from tracekit.redaction.screen import rows_matching

COLUMN = "cost_usd"

_COLUMNS = ["operation_name", "provider_name", "response_model", "request_model", "start_time_ns", "input_tokens",
            "output_tokens"]
_UNKNOWN = object()
_DAY_NS = 86_400 * 10**9
_EDGE_NS = 10**6
# What makes a span's attributes worth parsing: every name of a cache or reasoning token count (tracekit.cost's
# CACHE_READ_KEYS, CACHE_WRITE_KEYS, REASONING_KEYS; tests/collector/test_cost_processor.py checks each) holds
# ".cache_" or ".reasoning". A pattern whose every match starts with one literal byte lets RE2 jump from "." to "."
# (memchr) through a column of message JSON; an alternation of names with no common first byte made it step through
# every byte (~3x the cost of the rest of pricing with recorded content).
_DETAIL = re2.compile(b"\\.(?:cache_|reasoning)")


class CostProcessor:
    """Adds `cost_usd` (DOUBLE, NULL when not a model call or not priced) to the spans of a decoded batch."""

    def process(self, signal: str, batch: Batch) -> Batch:
        table = batch.tables.get("spans")
        if table is not None and table.num_rows:
            batch.tables["spans"] = price_table(table)
        return batch


def price_table(table: pa.Table) -> pa.Table:
    """The spans table with a `cost_usd` column (replaced if there is one already)."""
    column = price_column(table)
    position = table.schema.get_field_index(COLUMN)
    if position >= 0:
        return table.set_column(position, COLUMN, column)
    return table.append_column(COLUMN, column)


def price_column(table: pa.Table) -> pa.Array:
    """The cost of each span of `table` (None where not priced)."""
    has_tokens = pc.or_(pc.not_equal(pc.coalesce(table.column("input_tokens"), 0), 0),
                        pc.not_equal(pc.coalesce(table.column("output_tokens"), 0), 0)).combine_chunks()
    positions = pc.indices_nonzero(has_tokens)
    if len(positions) == 0:  # most requests: no span with tokens, nothing to convert
        return pa.nulls(table.num_rows, pa.float64())
    rows = table.select(_COLUMNS).take(positions)
    operations, providers, responses, requests, starts, inputs, outputs = (rows.column(name).to_pylist()
                                                                            for name in _COLUMNS)
    detailed = set(rows_matching(_DETAIL, table.column("attributes")))
    prices: list[float | None] = [None] * len(rows)
    one_by_one: list[int] = []
    groups: dict[tuple[Any, ...], Any] = {}  # what decides a price -> call_rates' answer
    for row, (position, start) in enumerate(zip(positions.to_pylist(), starts)):
        day, since_midnight = divmod(start, _DAY_NS)
        if start <= 0 or not _EDGE_NS <= since_midnight <= _DAY_NS - _EDGE_NS or position in detailed:
            one_by_one.append(row)
            continue
        key = (operations[row], providers[row], responses[row], requests[row], day)
        rates = groups.get(key, _UNKNOWN)
        if rates is _UNKNOWN:
            rates = groups[key] = cost.call_rates(operation=key[0], provider=key[1], response_model=key[2],
                                                  request_model=key[3], start_time_ns=start)
        if rates is None:
            continue
        if rates is True:
            one_by_one.append(row)
            continue
        a, b, c, d = rates
        tokens_in, tokens_out = inputs[row] or 0, outputs[row] or 0
        prices[row] = (a * tokens_in + b * tokens_out) + (c * tokens_in + d * tokens_out)
    if one_by_one:
        texts = table.column("attributes").take(pc.take(positions, pa.array(one_by_one, pa.int64()))).to_pylist()
        for row, text in zip(one_by_one, texts):
            prices[row] = _price_one(operations[row], providers[row], responses[row], requests[row], starts[row],
                                     inputs[row], outputs[row], text or "")
    return pc.replace_with_mask(pa.nulls(table.num_rows, pa.float64()), has_tokens, pa.array(prices, pa.float64()))


def _price_one(operation: str | None, provider: str | None, response_model: str | None, request_model: str | None,
               start_time_ns: int, input_tokens: int | None, output_tokens: int | None, text: str) -> float | None:
    """One span through `price_call`, with its attributes parsed when they may hold cache or reasoning counts."""
    parsed: Any = {}
    if _DETAIL.search(text.encode()) is not None:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    price = cost.price_call(parsed if isinstance(parsed, dict) else {}, operation=operation, provider=provider,
                            request_model=request_model, response_model=response_model, start_time_ns=start_time_ns,
                            input_tokens=input_tokens, output_tokens=output_tokens)
    return None if price is None else price.total_usd
