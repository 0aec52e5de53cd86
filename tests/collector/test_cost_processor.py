"""The cost processor prices a batch by groups, and each span gets exactly what `tracekit.cost.price_call` gives it."""

from __future__ import annotations

import random

import orjson
import pyarrow as pa

from tracekit import cost
from tracekit.collector.processors.cost import price_table

DAY_NS = 86_400 * 10**9
SCHEMA = pa.schema([("operation_name", pa.string()), ("provider_name", pa.string()), ("response_model", pa.string()),
                    ("request_model", pa.string()), ("start_time_ns", pa.int64()), ("input_tokens", pa.int64()),
                    ("output_tokens", pa.int64()), ("attributes", pa.string())])


def _one_by_one(row: dict) -> float | None:
    """The reference: one `price_call` per span, its attributes parsed whenever they hold anything."""
    if not row["input_tokens"] and not row["output_tokens"]:
        return None
    price = cost.price_call(orjson.loads(row["attributes"]), operation=row["operation_name"],
                            provider=row["provider_name"], request_model=row["request_model"],
                            response_model=row["response_model"], start_time_ns=row["start_time_ns"],
                            input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    return None if price is None else price.total_usd


def _spans(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    models = ["gpt-4o", "gpt-4o-mini", "o4-mini", "claude-3-5-sonnet", "gemini-1.5-pro", "no-such-model", None, ""]
    providers = ["openai", "OpenAI", "anthropic", "gcp.gemini", "azure.ai.openai", "my-local-server", None, ""]
    rows = []
    for _ in range(count):
        day = rng.randrange(19_000, 21_000)
        start = rng.choice([day * DAY_NS + rng.randrange(DAY_NS),            # any time of day
                            day * DAY_NS + rng.choice([0, 1, -1, 999, -999]),  # around midnight
                            0])
        attributes: dict = {"gen_ai.tool.name": "search"}
        if rng.random() < 0.1:
            attributes[rng.choice(cost.CACHE_READ_KEYS)] = rng.choice([40, 90_000, "55", -3])
        if rng.random() < 0.05:
            attributes[rng.choice(cost.CACHE_WRITE_KEYS)] = rng.choice([70, 12_000])
        if rng.random() < 0.05:
            attributes[rng.choice(cost.REASONING_KEYS)] = rng.randrange(0, 500)
        if rng.random() < 0.05:  # the pre-scan's literals in message text: parsed, found to hold no counts
            attributes["gen_ai.input.messages"] = '[{"content": "see docs.reasoning and x.cache_hits"}]'
        rows.append({"operation_name": rng.choice(["chat", "embeddings", "text_completion", "invoke_agent", None, ""]),
                     "provider_name": rng.choice(providers), "response_model": rng.choice(models),
                     "request_model": rng.choice(models), "start_time_ns": max(start, 0),
                     "input_tokens": rng.choice([None, 0, rng.randrange(-5, 400_000)]),
                     "output_tokens": rng.choice([None, 0, rng.randrange(0, 400_000)]),
                     "attributes": orjson.dumps(attributes).decode()})
    return rows


def test_each_span_costs_what_price_call_says_to_the_bit():
    rows = _spans(3000, seed=7)
    table = pa.Table.from_pylist(rows, SCHEMA)
    # Chunked as batches of several requests are: the processor must not assume one chunk.
    table = pa.concat_tables([table.slice(0, 1100), table.slice(1100)])
    priced = price_table(table).column("cost_usd").to_pylist()
    expected = [_one_by_one(row) for row in rows]
    assert priced == expected
    assert sum(value is not None for value in expected) > 500  # the sample does price most shapes


def test_a_batch_without_tokens_gets_a_null_column():
    rows = [dict(row, input_tokens=None, output_tokens=None) for row in _spans(10, seed=1)]
    table = price_table(pa.Table.from_pylist(rows, SCHEMA))
    assert table.column("cost_usd").null_count == 10


def test_the_pre_scan_finds_every_cache_and_reasoning_key():
    """A span is parsed for its cache and reasoning counts only when the pre-scan finds one of their keys."""
    from tracekit import cost
    from tracekit.collector.processors.cost import _DETAIL

    keys = (*cost.CACHE_READ_KEYS, *cost.CACHE_WRITE_KEYS, *cost.REASONING_KEYS)
    assert "llm.token_count.prompt_details.cache_read" in keys
    assert [key for key in keys if _DETAIL.search(f'{{"{key}": 1}}'.encode()) is None] == []
