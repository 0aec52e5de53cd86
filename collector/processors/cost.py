"""Cost: the `cost_usd` column of each decoded span, priced from its tokens (tracekit.cost) before it is stored.

Runs after redaction in the processor list. Only rows with tokens are looked at; their token counts come from the
typed columns, and the attribute JSON is parsed only when it mentions cache or reasoning tokens. Every other row
gets NULL.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tracekit import cost
from tracekit.collector.processors.normalize import Batch

COLUMN = "cost_usd"


class CostProcessor:
    """Adds `cost_usd` (DOUBLE, NULL when not a model call or not priced) to the spans of a decoded batch."""

    def process(self, signal: str, batch: Batch) -> Batch:
        table = batch.tables.get("spans")
        if table is not None and table.num_rows:
            batch.tables["spans"] = price_table(table)
        return batch


def price_table(table: pa.Table) -> pa.Table:
    """The spans table with a `cost_usd` column (replaced if there is one already)."""
    candidates = pc.indices_nonzero(pc.or_kleene(pc.is_valid(table.column("input_tokens")),
                                                 pc.is_valid(table.column("output_tokens"))))
    if len(candidates):
        column = pa.array(price_rows(table.take(candidates), candidates.to_pylist(), table.num_rows), pa.float64())
    else:  # most requests: no span with tokens, nothing to convert (to_pylist's first call imports pandas)
        column = pa.nulls(table.num_rows, pa.float64())
    position = table.schema.get_field_index(COLUMN)
    if position >= 0:
        return table.set_column(position, COLUMN, column)
    return table.append_column(COLUMN, column)


def price_rows(rows: pa.Table, positions: list[int], total: int) -> list[float | None]:
    """Costs for `total` spans, of which `rows` (at `positions`) have tokens; None for the rest."""
    columns = {name: rows.column(name).to_pylist()
               for name in ("input_tokens", "output_tokens", "operation_name", "provider_name", "request_model",
                            "response_model", "start_time_ns")}
    attributes = rows.column("attributes")
    values: list[float | None] = [None] * total
    for row, position in enumerate(positions):
        if not columns["input_tokens"][row] and not columns["output_tokens"][row]:
            continue
        if not cost.is_priced_operation(columns["operation_name"][row]):
            continue
        parsed: Any = {}
        text = attributes[row].as_py() or ""
        if "cache" in text or "reasoning" in text:  # only then is there more to read than the typed token columns
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
        price = cost.price_call(parsed if isinstance(parsed, dict) else {},
                                operation=columns["operation_name"][row], provider=columns["provider_name"][row],
                                request_model=columns["request_model"][row],
                                response_model=columns["response_model"][row],
                                start_time_ns=columns["start_time_ns"][row],
                                input_tokens=columns["input_tokens"][row], output_tokens=columns["output_tokens"][row])
        if price is not None:
            values[position] = price.total_usd
    return values
