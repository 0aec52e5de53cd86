"""Model calls priced at ingest: spans in each convention release's shape, through the real collector, priced
against genai-prices itself (never hard-coded prices)."""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tracekit import cli, cost
from tracekit.collector.offline import write_requests
from tracekit.store.database import open_store_readonly

START_NS = 1_768_471_200_000_000_000  # 2026-01-15 10:00 UTC: prices are dated, so the test asks for that day's
WHEN = datetime(2026, 1, 15, 12, tzinfo=timezone.utc)


def expected(model: str, provider: str | None, **tokens: int) -> float:
    return float(calc_price(Usage(**tokens), model_ref=model, provider_id=provider,
                            genai_request_timestamp=WHEN).total_price)


# (span name, attributes, expected cost or None). Each shape is one that instrumentations send today.
SHAPES = [
    ("v1.36 gen_ai.system + prompt/completion tokens",
     {"gen_ai.system": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
      "gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 300},
     lambda: expected("gpt-4o", "openai", input_tokens=1200, output_tokens=300)),
    ("v1.37 provider.name, response model preferred",
     {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
      "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 1000,
      "gen_ai.usage.output_tokens": 100},
     lambda: expected("gpt-4o-mini-2024-07-18", "openai", input_tokens=1000, output_tokens=100)),
    ("SCG cache read/write subsets of input (Anthropic)",
     {"gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 1000,
      "gen_ai.usage.cache_read.input_tokens": 300, "gen_ai.usage.cache_write.input_tokens": 200,
      "gen_ai.usage.output_tokens": 100},
     lambda: expected("claude-sonnet-4-5", "anthropic", input_tokens=1000, cache_read_tokens=300,
                      cache_write_tokens=200, output_tokens=100)),
    ("the older cache_creation name",
     {"gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 1000,
      "gen_ai.usage.cache_creation.input_tokens": 400, "gen_ai.usage.output_tokens": 10},
     lambda: expected("claude-sonnet-4-5", "anthropic", input_tokens=1000, cache_write_tokens=400,
                      output_tokens=10)),
    ("cache counts exceeding the input: Anthropic's own counting, added",
     {"gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 50,
      "gen_ai.usage.cache_read.input_tokens": 2000, "gen_ai.usage.output_tokens": 10},
     lambda: expected("claude-sonnet-4-5", "anthropic", input_tokens=2050, cache_read_tokens=2000,
                      output_tokens=10)),
    ("reasoning tokens are part of the output",
     {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "o3",
      "gen_ai.usage.input_tokens": 500, "gen_ai.usage.output_tokens": 900,
      "gen_ai.usage.reasoning.output_tokens": 700},
     lambda: expected("o3", "openai", input_tokens=500, output_tokens=900, output_reasoning_tokens=700)),
    ("Azure deployment name as request model, the model in the response",
     {"gen_ai.system": "az.ai.openai", "gen_ai.provider.name": "azure.ai.openai", "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "my-prod-deployment", "gen_ai.response.model": "gpt-4o-mini",
      "gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 80},
     lambda: expected("gpt-4o-mini", "azure", input_tokens=800, output_tokens=80)),
    ("embeddings",
     {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "embeddings",
      "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 5000},
     lambda: expected("text-embedding-3-small", "openai", input_tokens=5000)),
    ("a model the database does not know: NULL, not 0",
     {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "in-house-model-7", "gen_ai.usage.input_tokens": 10,
      "gen_ai.usage.output_tokens": 10}, lambda: None),
    ("a local provider the database has no counterpart for: NULL",
     {"gen_ai.provider.name": "ollama", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
      "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 10}, lambda: None),
    ("agent span usage aggregates its model calls: not priced again",
     {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
      "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200,
      "gen_ai.usage.output_tokens": 300}, lambda: None),
    ("a tool call: no tokens, no cost",
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, lambda: None),
]


def _emit(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("shapes")
    for name, attributes, _ in SHAPES:
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=START_NS)
        span.end(end_time=START_NS + 1_000_000)


def _stored_costs(db_path) -> dict[str, float | None]:
    con = open_store_readonly(db_path)
    try:
        return dict(con.execute("SELECT name, cost_usd FROM spans").fetchall())
    finally:
        con.close()


def _assert_priced(costs: dict[str, float | None]) -> None:
    assert len(costs) == len(SHAPES)
    for name, _, want in SHAPES:
        value = want()
        if value is None:
            assert costs[name] is None, name
        else:
            assert costs[name] == pytest.approx(value, rel=1e-9), name
            assert costs[name] > 0, name


def test_the_collector_prices_each_shape_at_ingest(collector):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                     insecure=True)))
    _emit(provider)
    provider.shutdown()
    rows = collector.reader().sql("SELECT name, cost_usd FROM spans").to_pylist()
    _assert_priced({row["name"]: row["cost_usd"] for row in rows})
    # The column is queryable in KQL as in SQL.
    total = collector.reader().sql("SELECT sum(cost_usd) AS total FROM spans").to_pylist()[0]["total"]
    assert total == pytest.approx(sum(v for _, _, w in SHAPES if (v := w()) is not None))


def test_offline_import_prices_the_same_way(tmp_path):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _emit(provider)
    provider.shutdown()
    db_path = tmp_path / "offline.duckdb"
    write_requests([encode_spans(memory.get_finished_spans())], db_path)
    _assert_priced(_stored_costs(db_path))


def test_cache_tokens_make_a_call_cheaper_than_the_same_tokens_uncached():
    base = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10_000, "gen_ai.usage.output_tokens": 10}
    cached = cost.price_call({**base, "gen_ai.usage.cache_read.input_tokens": 8_000}, start_time_ns=START_NS)
    uncached = cost.price_call(base, start_time_ns=START_NS)
    assert cached is not None and uncached is not None
    assert cached.total_usd < uncached.total_usd
    assert "cache read" in cached.rates and cached.model == "gpt-4o" and cached.provider == "openai"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_prices_update_without_network_says_so_and_keeps_the_packaged_prices(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cost.PRICES_FILE_ENV, str(tmp_path / "prices.json"))
    cost.reload_prices()
    before = cost.price_call(SHAPES[1][1], start_time_ns=START_NS)
    code = cli.main(["prices", "update", "--url", f"http://127.0.0.1:{_free_port()}/data.json", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "could not fetch" in err and "packaged with genai-prices" in err
    assert not (tmp_path / "prices.json").exists()
    assert cost.price_call(SHAPES[1][1], start_time_ns=START_NS) == before


def test_prices_update_uses_the_fetched_data(tmp_path, monkeypatch, capsys):
    data = [{"id": "openai", "name": "OpenAI", "api_pattern": "https://api\\.openai\\.com",
             "models": [{"id": "gpt-4o", "match": {"equals": "gpt-4o"},
                         "prices": {"input_mtok": 100, "output_mtok": 200}}]}]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(cost.PRICES_FILE_ENV, str(tmp_path / "prices.json"))
    try:
        assert cli.main(["prices", "update", "--url", f"http://127.0.0.1:{server.server_port}/d.json"]) == 0
        attributes = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
                      "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1_000_000,
                      "gen_ai.usage.output_tokens": 0}
        assert cost.price_call(attributes, start_time_ns=START_NS).total_usd == pytest.approx(100.0)
        assert (tmp_path / "prices.json").stat().st_mode & 0o077 == 0
    finally:
        server.shutdown()
        cost.reload_prices()


def test_prices_show_names_the_price_used_and_refuses_unknown_models(capsys):
    assert cli.main(["prices", "show", "gpt-4o", "--provider", "openai"]) == 0
    out = capsys.readouterr().out
    assert "openai gpt-4o" in out and "input MTok" in out
    assert cli.main(["prices", "show", "in-house-model-7"]) == 2
    assert "no price known" in capsys.readouterr().err


def test_reprice_prices_spans_stored_before_prices_existed(tmp_path, monkeypatch, capsys):
    """A store written without prices (cost_usd NULL, as a v2 store migrates) gets them from `--reprice`."""
    import duckdb

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _emit(provider)
    provider.shutdown()
    db_path = tmp_path / "old.duckdb"
    write_requests([encode_spans(memory.get_finished_spans())], db_path)
    con = duckdb.connect(str(db_path))
    con.execute("UPDATE spans SET cost_usd = NULL")
    con.close()
    assert all(value is None for value in _stored_costs(db_path).values())

    assert cli.main(["prices", "reprice", "--db", str(db_path)]) == 0
    assert "repriced 8 of 11 spans with tokens" in capsys.readouterr().out
    _assert_priced(_stored_costs(db_path))
