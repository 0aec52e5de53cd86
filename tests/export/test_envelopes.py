"""The fast envelope builder against the real AzureMonitorTraceExporter: the same JSON on the wire, field by field,
for every span shape tracekit exports; the exporter's own conversion for shapes it does not claim; and the run-time
check that switches a shape back to the exporter when the two ever differ."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from tests.export.fake_ingestion import FakeIngestion
from tests.export.helpers import RESOURCE
from tracekit.export.azure import AzureMonitorSender
from tracekit.export.cursor import SidecarCursorStore, sidecar_path
from tracekit.export.envelopes import EnvelopeBuilder, first_difference, wire_json
from tracekit.export.limits import AzureShaper, LimitReport
from tracekit.export.rebuild import ResourceCache, rebuild_spans
from tracekit.export.rows import RowReader
from tracekit.export.runner import run_export
from tracekit.export.selection import Selection, StoreSource
from tracekit.store.reader import LocalReader

CONNECTION = "InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint=http://127.0.0.1:9"
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
START = 1_763_000_000_123_456_789


@pytest.fixture(scope="module")
def exporter() -> AzureMonitorTraceExporter:
    exporter = AzureMonitorTraceExporter(connection_string=CONNECTION, disable_offline_storage=True)
    yield exporter
    exporter.shutdown()


def make_span(name: str = "chat gpt-4o", kind: SpanKind = SpanKind.CLIENT, attributes: dict[str, Any] | None = None,
              *, parent: bool = True, status: Status = Status(StatusCode.UNSET), events: list[Event] | None = None,
              links: list[Link] | None = None, resource: Resource = RESOURCE, scope: str | None = "tracekit.test",
              span_id: int = 0x00F067AA0BA902B7, start: int | None = START, end: int | None = START + 5_123_456,
              ) -> ReadableSpan:
    return ReadableSpan(
        name=name, context=SpanContext(TRACE_ID, span_id, False, TraceFlags(1)),
        parent=SpanContext(TRACE_ID, 0x53995C3F42CD8AD8, False) if parent else None, resource=resource,
        attributes=attributes if attributes is not None else {}, events=events or [], links=links or [], kind=kind,
        status=status, start_time=start, end_time=end,
        instrumentation_scope=InstrumentationScope(scope, "1.0") if scope is not None else None)


def exporter_json(exporter: AzureMonitorTraceExporter, span: ReadableSpan) -> str:
    return wire_json([exporter._span_to_envelope(span), *exporter._span_events_to_envelopes(span)])


def assert_fast_and_identical(exporter: AzureMonitorTraceExporter, span: ReadableSpan) -> None:
    """A fresh builder (so this span is checked, not trusted) builds it itself, to the exporter's exact JSON."""
    builder = EnvelopeBuilder(exporter)
    ours = builder.envelopes(span)
    theirs = exporter_json(exporter, span)
    assert builder.mismatches == [], builder.mismatches
    assert (builder.fast, builder.converted) == (1, 0), "the fast path should claim this span"
    assert wire_json(ours) == theirs, first_difference(ours, json.loads(theirs))


GEN_AI = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
          "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 97,
          "gen_ai.response.finish_reasons": ("stop",), "server.address": "api.openai.com", "server.port": 443,
          "gen_ai.conversation.id": "conv-1"}
EXCEPTION = Event("exception", {"exception.type": "ValueError", "exception.message": "no such city",
                                "exception.stacktrace": "Traceback...\nValueError: no such city",
                                "exception.escaped": False}, START + 1000)
LINK = Link(SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False), {"link.kind": "caller"})

HAND_WRITTEN = {
    "chat client": make_span(attributes=GEN_AI),
    "agent internal": make_span("invoke_agent planner", SpanKind.INTERNAL, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner", "gen_ai.system": "openai",
        "microsoft.gen_ai.main_agent.name": "planner"}, parent=False),
    "tool internal, error, exception event": make_span("execute_tool get_weather", SpanKind.INTERNAL, {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.arguments": '{"city": "Paris"}', "otel.status_description": "no such city"},
        status=Status(StatusCode.ERROR, "no such city"), events=[EXCEPTION]),
    "agent client without gen_ai.system": make_span("invoke_agent remote", SpanKind.CLIENT, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "azure.ai.agents"}),
    "empty gen_ai.system": make_span(kind=SpanKind.CLIENT, attributes={"gen_ai.system": ""}),
    "numeric gen_ai.system": make_span(kind=SpanKind.INTERNAL, attributes={"gen_ai.system": 0}),
    "server request": make_span("agent turn", SpanKind.SERVER, {"gen_ai.agent.name": "planner"}, parent=False),
    "consumer with OK status": make_span("handle message", SpanKind.CONSUMER, {"a": 1},
                                         status=Status(StatusCode.OK)),
    "producer": make_span("enqueue", SpanKind.PRODUCER, {"queue.name": "work"}),
    "events of every kind": make_span(attributes=GEN_AI, events=[
        Event("gen_ai.content.prompt", {"gen_ai.prompt": "héllo ✓ 世界", "session.id": "s-event"}, START + 10),
        Event("exception", {}, START + 20),
        Event("exception", {"exception.message": "m" * 40_000}, START + 30),
        Event("note", {"microsoft.custom_measurements": '{"score": 0.5, "flag": true}', "n": None}, START + 40),
        Event("x" * 40_000, None, START + 50)]),
    "links, one and many": make_span(attributes={"a": "b"}, links=[LINK] * 110),
    "one link": make_span(attributes={"a": "b"}, links=[LINK]),
    "sample rate, session, end users, measurements": make_span(attributes={
        "_MS.sampleRate": 25.0, "session.id": "sess-1", "enduser.id": "alice", "enduser.pseudo.id": "p-1",
        "microsoft.custom_measurements": {"latency": 12, "bad": float("inf"), "no": True}}),
    "integer sample rate, non-string session": make_span(attributes={"_MS.sampleRate": 50, "session.id": 7}),
    "synthetic source (type)": make_span(attributes={"user_agent.synthetic.type": "bot"}),
    "synthetic source (AlwaysOn agent)": make_span(kind=SpanKind.SERVER, attributes={
        "user_agent.original": "Mozilla AlwaysOn"}),
    "long texts": make_span("n" * 2000, attributes={
        "gen_ai.input.messages": "c" * 300_000, "gen_ai.output.messages": "o" * 9000, "plain": "p" * 9000,
        "k" * 151: "dropped key", "error.type": "TimeoutError", "url.full": "https://x", "code.function": "f"}),
    "non-ASCII and every value type": make_span("chat ✓ 模型", attributes={
        "text": "Grüße, 世界 \u2028 \"quoted\" \\ \n", "bool": True, "int": -3, "float": 1.5e-7, "big": 10**18,
        "strs": ("a", "ü"), "bools": (True, False), "ints": (1, 2), "floats": (0.1, float("nan")), "empty": ()}),
    "no parent id, no times": make_span(parent=False, start=None, end=None, attributes={"a": 1}),
    "whole second start": make_span(start=1_763_000_000_000_000_000, end=1_763_000_000_000_000_000 + 86_400 * 10**9
                                    + 3_723_456_789_123, attributes={"a": 1}),
    "metric-extracting scope": make_span(kind=SpanKind.SERVER, scope="opentelemetry.instrumentation.flask",
                                         attributes={"a": 1}),
    "no scope, empty attributes": make_span(scope=None, attributes={}),
    "k8s resource": make_span(resource=Resource({"service.name": "unknown_service:python",
                                                 "k8s.deployment.name": "agents", "k8s.pod.name": "agents-1",
                                                 "device.id": "dev", "device.model.name": "m"}), attributes={"a": 1}),
    "empty resource": make_span(resource=Resource({}), attributes={"a": 1}),
    "empty name": make_span("", attributes={"a": 1}),
}


@pytest.mark.parametrize("case", sorted(HAND_WRITTEN))
def test_hand_written_shapes_build_fast_to_the_exporters_exact_json(exporter, case: str) -> None:
    assert_fast_and_identical(exporter, HAND_WRITTEN[case])


@pytest.mark.parametrize("attributes", [
    {"http.request.method": "GET", "url.full": "https://api.openai.com/v1/chat", "http.response.status_code": 404},
    {"http.method": "POST", "http.route": "/chat"},
    {"db.system.name": "postgresql", "db.query.text": "select 1"},
    {"messaging.system": "servicebus", "messaging.destination": "q"},
    {"rpc.system": "grpc"},
    {"peer.service": "search", "gen_ai.system": "openai"},
    {"net.peer.name": "example.com", "net.peer.port": 8080},
    {"az.namespace": "Microsoft.CognitiveServices", "gen_ai.system": "az.ai.inference"},
    {"client.address": "10.0.0.1"},
])
@pytest.mark.parametrize("kind", [SpanKind.CLIENT, SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.INTERNAL])
def test_special_mappings_are_left_to_the_exporter(exporter, attributes: dict[str, Any], kind: SpanKind) -> None:
    builder = EnvelopeBuilder(exporter)
    span = make_span("GET /chat", kind, attributes)
    assert wire_json(builder.envelopes(span)) == exporter_json(exporter, span)
    assert (builder.fast, builder.converted) == (0, 1)


# --- generated shapes -------------------------------------------------------------------------------------------
_keys = st.sampled_from([
    "gen_ai.system", "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.input.messages", "session.id",
    "enduser.id", "enduser.pseudo.id", "_MS.sampleRate", "microsoft.custom_measurements", "user_agent.original",
    "user_agent.synthetic.type", "error.type", "server.address", "exception.type", "code.function", "thread.id",
    "gen_ai.usage.input_tokens", "tracekit.trimmed", "k" * 151, "", "ключ", "a.b"]) | st.text(min_size=1, max_size=12)
_texts = st.text(max_size=40) | st.sampled_from(["bot", "test", "AlwaysOn probe", "", "héllo ✓"]) | \
    st.integers(0, 40_000).map(lambda n: "é" * n)
_scalars = _texts | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=True)
_values = _scalars | st.lists(_texts, max_size=3).map(tuple) | st.lists(st.integers(-9, 9), max_size=3).map(tuple) | \
    st.lists(st.floats(), max_size=2).map(tuple) | st.lists(st.booleans(), max_size=2).map(tuple)
_attributes = st.dictionaries(_keys, _values, max_size=10)
_events = st.lists(st.builds(
    lambda name, attributes, offset: Event(name, attributes, START + offset),
    st.sampled_from(["exception", "gen_ai.choice", "", "é" * 3]) | st.text(max_size=8),
    st.dictionaries(st.sampled_from(["exception.type", "exception.message", "exception.stacktrace", "session.id",
                                     "microsoft.custom_measurements", "note", "http.x", "az.namespace",
                                     "client.address"]) | st.text(max_size=6),
                    _values, max_size=4),
    st.integers(0, 10**12)), max_size=3)
_links = st.lists(st.builds(lambda t, s: Link(SpanContext(t, s, False)), st.integers(1, 2**128 - 1),
                            st.integers(1, 2**64 - 1)), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.text(max_size=30) | st.integers(1000, 1100).map(lambda n: "n" * n), kind=st.sampled_from(SpanKind),
       attributes=_attributes, events=_events, links=_links, parent=st.booleans(),
       status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
       start=st.integers(0, 2 * 10**18), duration=st.integers(0, 10**15),
       scope=st.sampled_from([None, "tracekit.test", "opentelemetry.instrumentation.requests", "azure.ai.x"]))
def test_generated_shapes_give_the_exporters_exact_json(exporter, name, kind, attributes, events, links, parent,
                                                        status, start, duration, scope) -> None:
    span = make_span(name, kind, attributes, parent=parent, status=Status(status), events=events, links=links,
                     scope=scope, start=start, end=start + duration)
    builder = EnvelopeBuilder(exporter)
    ours = builder.envelopes(span)
    theirs = exporter_json(exporter, span)
    assert wire_json(ours) == theirs
    assert builder.mismatches == [], builder.mismatches      # the fast path agreed wherever it claimed the span
    assert builder.fast + builder.converted == 1


# --- the run-time check ------------------------------------------------------------------------------------------
class UpgradedExporter(AzureMonitorTraceExporter):
    """The real exporter with a mapping change, as a future release might bring: chat spans get one more property."""

    def _span_to_envelope(self, span: ReadableSpan):
        envelope = super()._span_to_envelope(span)
        if span.name.startswith("chat"):
            envelope.data.base_data.properties["new.in.next.release"] = "1"
        return envelope


def test_a_shape_the_exporter_maps_differently_goes_back_to_the_exporter(caplog) -> None:
    exporter = UpgradedExporter(connection_string=CONNECTION, disable_offline_storage=True)
    builder = EnvelopeBuilder(exporter)
    chats = [make_span(attributes=GEN_AI, span_id=index + 1) for index in range(3)]
    tools = [HAND_WRITTEN["tool internal, error, exception event"]] * 2
    with caplog.at_level(logging.DEBUG, logger="tracekit.export.envelopes"):
        for span in chats + tools:
            assert wire_json(builder.envelopes(span)) == exporter_json(exporter, span)
    # The chat shape was checked once, found different and converted by the exporter from then on; the tool shape,
    # mapped as before, stays on the fast path after its check.
    assert builder.converted == 3 and builder.fast == 2
    assert len(builder.mismatches) == 1 and "new.in.next.release" in builder.mismatches[0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "exporter converts that shape" in warnings[0].getMessage()
    exporter.shutdown()


def test_one_check_per_shape_then_the_fast_path(exporter) -> None:
    builder = EnvelopeBuilder(exporter)
    for index in range(50):
        span = make_span(attributes={**GEN_AI, "gen_ai.response.id": f"resp_{index}"}, span_id=index + 1)
        assert wire_json(builder.envelopes(span)) == exporter_json(exporter, span)
    assert (builder.fast, builder.converted, builder.mismatches) == (50, 0, [])
    # A new value type for a key is a new shape: checked again.
    builder.envelopes(make_span(attributes={**GEN_AI, "gen_ai.response.id": 7}))
    assert len(builder._verified) == 2
    # So are texts that reach another of the exporter's cuts, and links past its 103rd; not another link count.
    short, long = (Event("exception", {"exception.message": text}, START) for text in ("short", "m" * 40_000))
    for span in (make_span(attributes={"a": "b"}, events=[short]), make_span(attributes={"a": "b"}, events=[long]),
                 make_span(attributes={"a": "b"}, links=[LINK]), make_span(attributes={"a": "b"}, links=[LINK] * 5),
                 make_span(attributes={"a": "b"}, links=[LINK] * 110)):
        assert wire_json(builder.envelopes(span)) == exporter_json(exporter, span)
    assert len(builder._verified) == 6 and builder.converted == 0


# --- end to end: what reaches ingestion ------------------------------------------------------------------------
def test_posted_envelopes_are_the_exporters_own_for_the_shaped_spans(store: Path, exporter) -> None:
    """Everything the sender posted equals what the bare exporter builds from the same shaped spans."""
    with FakeIngestion() as fake:
        reader = LocalReader.open_file(store)
        sender = AzureMonitorSender(fake.connection_string)
        summary = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(store)),
                             page_size=7)
        assert summary.complete and sender.envelope_builder.fast == 60 and not sender.envelope_builder.mismatches
        posted = [e for e in fake.accepted if e["data"]["baseType"] != "EventData"]
        source = StoreSource(reader, Selection())
        keys = source.list_keys()
        expected: list[Any] = []
        shaper, rows, resources = AzureShaper(), RowReader(source), ResourceCache()
        for start in range(0, len(keys), 7):
            page = rows.fetch(keys[start:start + 7], with_main_agents=True)
            for span in rebuild_spans(page, resources):
                key = (span.trace_id_hex, span.span_id_hex)
                shaped = shaper.span(span, LimitReport(), page.main_agents.get(key), page.costs.get(key))
                expected += [sender.traces._span_to_envelope(shaped), *sender.traces._span_events_to_envelopes(shaped)]
        sender.close()
        reader.close()
    assert posted == json.loads(wire_json(expected))
    assert sum("tracekit.cost_usd" in e["data"]["baseData"]["measurements"] for e in posted) == 20  # the chats


def test_main_agents_are_the_same_whatever_the_page_boundaries(store: Path) -> None:
    reader = LocalReader.open_file(store)
    source = StoreSource(reader, Selection())
    keys = source.list_keys()
    rows = RowReader(source)
    whole = rows.fetch(keys, with_main_agents=True).main_agents
    paged: dict[Any, Any] = {}
    for start in range(0, len(keys), 2):   # parents mostly on another page: their rows come from the store
        paged.update(rows.fetch(keys[start:start + 2], with_main_agents=True).main_agents)
    reader.close()
    assert len(whole) == len(keys) and paged == whole
    assert {agent["agent_name"] for agent in whole.values()} == {"planner", "writer"}
    assert {agent["depth"] for agent in whole.values()} == {0, 1}


def test_the_resource_metric_goes_in_front_when_turned_back_on(store: Path, monkeypatch) -> None:
    """As `export()` does: one `_OTELRESOURCE_` metric per request, outside the per-item accounting."""
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setenv("APPLICATIONINSIGHTS_OPENTELEMETRY_RESOURCE_METRIC_DISABLED", "false")
    with FakeIngestion() as fake:
        reader = LocalReader.open_file(store)
        sender = AzureMonitorSender(fake.connection_string)
        sender.traces._tracer_provider = TracerProvider(resource=Resource({"service.name": "exporting-process"}))
        summary = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(store)),
                             page_size=25)
        sender.close()
        reader.close()
        metrics = [e for e in fake.accepted if e["data"]["baseType"] == "MetricData"]
    assert summary.complete and summary.delivered == 120 and not summary.refused
    assert len(metrics) == 3       # one per request with spans: 60 spans in pages of 25
    assert metrics[0]["data"]["baseData"]["metrics"][0]["name"] == "_OTELRESOURCE_"
    assert metrics[0]["data"]["baseData"]["properties"]["service.name"] == "exporting-process"
