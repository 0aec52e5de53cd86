"""The trace decoders: the compiled one (_fastdecode) and the pure-Python reference, value for value.

The tests that check decoded values run once per implementation (`implementation` fixture): "python" checks the
reference decoder alone (the path every install has), "compiled" runs both on the same bytes, compares the whole
Batch (tables, counts, rejection messages) and checks the values. Inputs: real SDK spans through the real OTLP
encoder, requests built with the opentelemetry-proto classes (what the SDK cannot express: kvlists, bytes, deep
nesting, duplicate keys), hand-made wire bytes (merged fields, unknown fields, groups), random requests from
hypothesis, and a few seconds of the fuzz harness (tests/collector/fuzz_decoder.py). Tests of the C function itself
skip when it was not built, except under CI (`CI` set), where a missing build fails `test_the_compiled_decoder_is_built`.
"""

from __future__ import annotations

import gc
import math
import os
import random
import struct
import sys
import tracemalloc

import orjson
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (AnyValue, ArrayValue, InstrumentationScope, KeyValue,
                                                      KeyValueList)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace import Status as SdkStatus
from opentelemetry.trace import StatusCode

from tests.collector import fuzz_decoder
from tests.collector.fuzz_decoder import assert_same
from tracekit.collector.processors import normalize
from tracekit.collector.processors.anyvalue import UNLIMITED, AttributeLimits
from tracekit.collector.processors.decode import decode_payload
from tracekit.collector.processors.normalize import Batch, _decode_traces_python, decode_traces_payload

fastdecode = normalize._fastdecode  # None when the extension was not built (no C compiler or Python headers)
NOT_BUILT = "the compiled decoder was not built (no C compiler or Python headers at install time)"
compiled_only = pytest.mark.skipif(fastdecode is None, reason=NOT_BUILT)

TRACE_ID = bytes(range(1, 17))


def test_the_compiled_decoder_is_built() -> None:
    """Without a compiler the install succeeds and the tests of the C code skip; CI must not pass that way."""
    if fastdecode is None:
        if os.environ.get("CI"):
            pytest.fail(f"{NOT_BUILT}; CI must build it (install gcc and python3-dev) so its tests run")
        pytest.skip(NOT_BUILT)
    assert normalize._fastdecode is fastdecode and callable(fastdecode.decode_traces)


@pytest.fixture(params=["python", "compiled"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Decode with the pure-Python decoder alone, or with the compiled one checked against it."""
    if request.param == "compiled" and fastdecode is None:
        pytest.skip(NOT_BUILT)
    if request.param == "python":
        monkeypatch.setattr(normalize, "_fastdecode", None)
    return request.param


# --- helpers -----------------------------------------------------------------------------------------------------

def table_rows(batch: Batch, name: str) -> list[dict]:
    if name not in batch.tables:
        return []
    table = batch.tables[name]
    return [dict(zip(table.column_names, values))
            for values in zip(*(fuzz_decoder._plain(table[c]) for c in table.column_names))]


NO_LIMITS = AttributeLimits(UNLIMITED, UNLIMITED, UNLIMITED, UNLIMITED, UNLIMITED)


def both_paths(payload: bytes, limits: AttributeLimits = AttributeLimits()) -> tuple[Batch, Batch]:
    request = ExportTraceServiceRequest.FromString(payload)
    return _decode_traces_python(request, limits), decode_traces_payload(payload, request, limits)


def check(payload: bytes, limits: AttributeLimits = AttributeLimits()) -> Batch:
    """Both paths agree on `payload`; returns the Batch of the implementation under test for further checks (with
    the `implementation` fixture at "python" both are the Python decoder)."""
    expected, actual = both_paths(payload, limits)
    assert_same(expected, actual)
    if normalize._fastdecode is not None:
        call_c(payload)  # it must not have refused (decode_traces_payload would have fallen back to Python)
    return actual


def spans_rows(batch: Batch) -> list[dict]:
    return table_rows(batch, "spans")


def av(value: object) -> AnyValue:
    """A Python value as an AnyValue: dict or KV -> kvlist, list -> array, bytes, None -> unset."""
    if isinstance(value, AnyValue):
        return value
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[av(item) for item in value]))
    pairs = value.pairs if isinstance(value, KV) else list(value.items())
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=av(v)) for k, v in pairs]))


class KV:
    """A kvlist given as pairs, so a test can repeat a key."""

    def __init__(self, *pairs: tuple[str, object]) -> None:
        self.pairs = list(pairs)


def kvs(pairs: list[tuple[str, object]] | dict) -> list[KeyValue]:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [KeyValue(key=k, value=av(v)) for k, v in items]


def proto_span(index: int = 1, attributes: list | dict | None = None, **fields: object) -> Span:
    span = Span(trace_id=TRACE_ID, span_id=index.to_bytes(8, "big"), name=f"span {index}",
                start_time_unix_nano=1_700_000_000_000_000_000 + index, end_time_unix_nano=1_700_000_000_500_000_000)
    span.attributes.extend(kvs(attributes or []))
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(span, key).extend(value)
        elif key == "status":
            span.status.CopyFrom(value)
        else:
            setattr(span, key, value)
    return span


def request_of(*spans: Span, service: str | None = "svc", scope: str = "scope") -> bytes:
    resource = ProtoResource(attributes=kvs({"service.name": service} if service is not None else {}))
    resource_spans = ResourceSpans(resource=resource, scope_spans=[
        ScopeSpans(scope=InstrumentationScope(name=scope, version="1.0"), spans=list(spans))])
    return ExportTraceServiceRequest(resource_spans=[resource_spans]).SerializeToString()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field on the wire."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def raw_request(span_bytes: list[bytes]) -> bytes:
    """A request whose spans are given as raw bytes (to put merged or unknown fields on the wire)."""
    resource = ProtoResource(attributes=kvs({"service.name": "svc"})).SerializeToString()
    scope_spans = field(1, InstrumentationScope(name="raw").SerializeToString()) + b"".join(
        field(2, item) for item in span_bytes)
    return field(1, field(1, resource) + field(2, scope_spans))


def nested(levels: int, leaf: object = "leaf", container: str = "array") -> AnyValue:
    """`levels` containers inside each other: as an attribute value, the innermost one sits at depth `levels`."""
    value = av(leaf)
    for _ in range(levels):
        value = AnyValue(array_value=ArrayValue(values=[value])) if container == "array" else AnyValue(
            kvlist_value=KeyValueList(values=[KeyValue(key="k", value=value)]))
    return value


def call_c(payload: bytes, resources: int | None = None):
    """The C function on its own, as the fuzz tests feed it."""
    if resources is None:
        try:
            resources = len(ExportTraceServiceRequest.FromString(payload).resource_spans)
        except Exception:  # noqa: BLE001 - malformed on purpose; give it plenty of owners
            resources = 64
    owners = [(index, f"svc{index}") for index in range(resources)]
    return fastdecode.decode_traces(payload, owners, normalize._TYPED_STR_KEYS, normalize._TYPED_INT_KEYS,
                                    normalize.MAX_DEPTH)


# --- real SDK spans ----------------------------------------------------------------------------------------------

CONTROL = "".join(chr(code) for code in range(32)) + "\x7f"
SDK_ATTRIBUTES = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 37.0, "gen_ai.request.temperature": 0.1,
    "empty": "", "unicode": "héllo 世界 🎉 \u2028\u2029", "escapes": 'quote " backslash \\ slash / tab\t',
    "controls": CONTROL, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "yes": True, "no": False,
    "ints": [1, -2, 2**63 - 1, -(2**63)], "floats": [0.1, 1e-05, 2.5e-05, 1e-07, 1e16, 1e15, -0.0, 5e-324, 1.5e300],
    "strs": ["a", "", "ü", CONTROL], "bools": [True, False], "huge": "x" * 300_000 + "é" * 1000,
    "gen_ai.agent.name": ["planner", "critic"], "error.type": 42, "gen_ai.response.id": 1.5,
    "session.id": "s-1", "gen_ai.tool.name": math.nan,
}


def sdk_payload() -> tuple[bytes, list]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "fast-decode", "service.version": "1.2"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.fastdecode", "0.1")
    with tracer.start_as_current_span("invoke_agent planner", attributes=SDK_ATTRIBUTES) as root:
        root.add_event("gen_ai.user.message", {"content": "Plan a trip to Zürich\n", "n": 3, "x": [1.5, 2.0]})
        root.add_event("empty event")
        for kind in SpanKind:
            with tracer.start_as_current_span(f"child {kind.name}", kind=kind,
                                              attributes={"gen_ai.usage.input_tokens": True, "k": kind.value}):
                pass
        linked = tracer.start_span("linked", links=[Link(root.get_span_context(), {"link.why": "follows"}),
                                                    Link(root.get_span_context())],
                                   attributes={"gen_ai.usage.prompt_tokens": 1e300, "gen_ai.system": "az.ai"})
        linked.set_status(SdkStatus(StatusCode.ERROR, "boom: ünïcode \"quoted\"\n"))
        linked.record_exception(ValueError("bad <value> \x00"))
        linked.end()
        ok = tracer.start_span("ok", attributes={"gen_ai.usage.input_tokens": "12"})
        ok.set_status(SdkStatus(StatusCode.OK))
        ok.end()
    provider.shutdown()
    spans = exporter.get_finished_spans()
    return encode_spans(spans).SerializeToString(), spans


def test_real_sdk_spans_decode_the_same_on_both_paths(implementation: str) -> None:
    payload, spans = sdk_payload()
    batch = check(payload)
    assert batch.accepted == len(spans) == 8 and batch.rejected == 0
    rows = {row["name"]: row for row in spans_rows(batch)}
    root = rows["invoke_agent planner"]
    attributes = orjson.loads(root["attributes"])
    assert attributes["controls"] == CONTROL and attributes["unicode"] == SDK_ATTRIBUTES["unicode"]
    assert attributes["escapes"] == SDK_ATTRIBUTES["escapes"] and attributes["empty"] == ""
    assert (attributes["nan"], attributes["inf"], attributes["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert attributes["floats"] == [0.1, 1e-05, 2.5e-05, 1e-07, 1e16, 1e15, -0.0, 5e-324, 1.5e300]
    assert attributes["ints"] == [1, -2, 2**63 - 1, -(2**63)] and len(attributes["huge"]) == 301_000
    # typed columns: strings as-is, other values as JSON text, integral doubles as integers
    assert (root["request_model"], root["agent_name"], root["error_type"]) == ("gpt-4o", '["planner","critic"]', "42")
    assert (root["response_id"], root["conversation_id"], root["tool_name"]) == ("1.5", "s-1", "NaN")
    assert (root["input_tokens"], root["output_tokens"]) == (1200, 37)
    assert rows["child CLIENT"]["kind"] == "CLIENT" and rows["child CLIENT"]["input_tokens"] is None  # a bool
    assert rows["linked"]["input_tokens"] is None  # 1e300 is integral but does not fit BIGINT
    assert rows["linked"]["provider_name"] == "az.ai"  # the second key of the column
    assert rows["linked"]["status_code"] == "ERROR"
    assert rows["linked"]["status_message"] == "boom: ünïcode \"quoted\"\n"
    assert rows["ok"]["status_code"] == "OK" and rows["ok"]["input_tokens"] is None  # a string
    events = table_rows(batch, "span_events")
    root_events = [event for event in events if event["span_id"] == root["span_id"]]
    assert [event["name"] for event in root_events] == ["gen_ai.user.message", "empty event"]
    assert [event["event_index"] for event in root_events] == [0, 1]
    assert orjson.loads(root_events[0]["attributes"]) == {"content": "Plan a trip to Zürich\n", "n": 3, "x": [1.5, 2.0]}
    assert [event["name"] for event in events if event["span_id"] == rows["linked"]["span_id"]] == ["exception"]
    links = table_rows(batch, "span_links")
    assert [link["link_index"] for link in links] == [0, 1]
    assert links[0]["linked_span_id"] == root["span_id"]
    assert orjson.loads(links[0]["attributes"]) == {"link.why": "follows"}


def test_doubles_are_written_exactly_as_orjson_writes_them(implementation: str) -> None:
    rng = random.Random(7)
    doubles = [0.1, 1.0, -0.0, 1e-05, 2.5e-05, -3.25e-05, 1e-07, 0.0001, 1e15, 1e16, 1e22, 5e-324, 1.7976931348623157e308,
               123456789012345.6, 1.2345678901234568e16]
    doubles += [rng.uniform(-1, 1) * 10.0 ** rng.randint(-12, 25) for _ in range(300)]
    payload = request_of(proto_span(attributes=[(f"d{i}", d) for i, d in enumerate(doubles)]))
    batch = check(payload, NO_LIMITS)
    text = spans_rows(batch)[0]["attributes"]
    assert text == orjson.dumps({f"d{i}": d for i, d in enumerate(doubles)}).decode()


def test_doubles_of_every_magnitude_and_the_powers_of_two_are_written_as_orjson_writes_them(implementation: str) -> None:
    """The compiled decoder finds the shortest digits itself (it runs without the GIL, so CPython's dtoa is out of
    reach). Powers of two are where the shortest digits are not the correctly rounded ones (their lower rounding
    interval is half the upper one): 2**-24 is 5.960464477539063e-8, not ...9062 or the exact ...90625."""
    rng = random.Random(11)
    doubles = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(3000)]
    doubles = [d for d in doubles if math.isfinite(d)]
    for exponent in range(-1074, 1024, 3):
        power = 2.0**exponent
        doubles += [power, -power, math.nextafter(power, 0.0), math.nextafter(power, math.inf)]
    doubles += [round(rng.random(), rng.randint(1, 6)) for _ in range(500)]
    for start in range(0, len(doubles), 400):
        chunk = doubles[start:start + 400]
        batch = check(request_of(proto_span(attributes=[(f"d{i}", d) for i, d in enumerate(chunk)])), NO_LIMITS)
        text = spans_rows(batch)[0]["attributes"]
        assert text == orjson.dumps({f"d{i}": d for i, d in enumerate(chunk)}).decode()


# --- values the SDK cannot express --------------------------------------------------------------------------------

def test_kvlists_bytes_unset_values_and_duplicate_keys(implementation: str) -> None:
    attributes = [
        ("obj", {"a": 1, "b": [True, None, b"\x00\xff"], "c": {"d": "e"}}),
        ("bytes", b"\x00\x01\x02\xfe\xff"), ("bytes1", b"x"), ("bytes2", b"xy"), ("nothing", None),
        ("dup", "first"), ("other", 1), ("dup", "last"),  # last value, first position
        ("obj_dups", KV(("x", 1), ("y", 2), ("x", 3))), ("", "empty key"), ("ключ", "значение"),
        ("gen_ai.request.model", None), ("gen_ai.response.model", b"\x01\x02"), ("gen_ai.agent.id", {"k": "v"}),
        ("strindex", AnyValue(string_value_strindex=3)),
    ]
    batch = check(request_of(proto_span(attributes=attributes)))
    row = spans_rows(batch)[0]
    decoded = orjson.loads(row["attributes"])
    assert list(decoded)[:4] == ["obj", "bytes", "bytes1", "bytes2"]
    assert decoded["obj"] == {"a": 1, "b": [True, None, "AP8="], "c": {"d": "e"}}
    assert (decoded["bytes"], decoded["bytes1"], decoded["bytes2"]) == ("AAEC/v8=", "eA==", "eHk=")
    assert decoded["nothing"] is None and decoded["strindex"] is None
    assert list(decoded).index("dup") == 5 and decoded["dup"] == "last"
    assert decoded["obj_dups"] == {"x": 3, "y": 2} and list(decoded["obj_dups"]) == ["x", "y"]
    assert decoded[""] == "empty key" and decoded["ключ"] == "значение"
    assert row["request_model"] is None and row["response_model"] == "AQI=" and row["agent_id"] == '{"k":"v"}'


def test_many_attributes_with_duplicates_use_the_hash_path(implementation: str) -> None:
    rng = random.Random(3)
    attributes = [(f"key{rng.randrange(60)}", rng.randrange(1000)) for _ in range(500)]
    batch = check(request_of(proto_span(attributes=attributes)))
    expected: dict[str, int] = {}
    for key, value in attributes:
        expected[key] = value
    assert orjson.loads(spans_rows(batch)[0]["attributes"]) == expected
    assert list(orjson.loads(spans_rows(batch)[0]["attributes"])) == list(expected)


def _spec_limited(attributes: list[tuple[str, object]], limit: int) -> tuple[dict, int]:
    """The specification's count limit, attribute by attribute: a new key past the limit is discarded (and counted),
    a kept key still takes later values. (The Go and Java SDKs do this; Python's evicts the oldest key instead.)"""
    kept: dict = {}
    dropped = 0
    for key, value in attributes:
        if key in kept or len(kept) < limit:
            kept[key] = value
        else:
            dropped += 1
    return kept, dropped


@pytest.mark.parametrize("limit", [0, 1, 5, 16, 17, 128])
def test_attribute_count_limits_work_as_the_specification_says_on_both_paths(implementation: str,
                                                                               limit: int) -> None:
    rng = random.Random(limit)
    attributes = [(f"key{rng.randrange(40)}", rng.randrange(1000)) for _ in range(300)]
    event = Span.Event(time_unix_nano=5, name="e", attributes=kvs(attributes[:50]), dropped_attributes_count=2)
    link = Span.Link(trace_id=TRACE_ID, span_id=b"\x07" * 8, attributes=kvs(attributes[:30]))
    span = proto_span(attributes=attributes, dropped_attributes_count=3, events=[event], links=[link])
    limits = AttributeLimits(span=limit, event=max(limit - 1, 0), link=limit + 1, kvlist=limit)
    batch = check(request_of(span), limits)
    kept, dropped = _spec_limited(attributes, limit)
    row = spans_rows(batch)[0]
    assert orjson.loads(row["attributes"]) == kept and list(orjson.loads(row["attributes"])) == list(kept)
    assert row["dropped_attributes_count"] == 3 + dropped
    event_row = table_rows(batch, "span_events")[0]
    kept, dropped = _spec_limited(attributes[:50], limits.event)
    assert orjson.loads(event_row["attributes"]) == kept and event_row["dropped_attributes_count"] == 2 + dropped
    link_row = table_rows(batch, "span_links")[0]
    kept, dropped = _spec_limited(attributes[:30], limits.link)
    assert orjson.loads(link_row["attributes"]) == kept and link_row["dropped_attributes_count"] == dropped


def test_nested_maps_are_limited_and_their_drops_counted_on_the_span(implementation: str) -> None:
    wide = KV(*[(f"n{i}", i) for i in range(10)], ("n0", "again"))
    deep_but_dropped = nested(40)
    attributes = [("map", wide), ("list", [KV(("a", 1), ("b", 2), ("c", 3))]),
                  ("over", KV(("x", 1), ("y", 2), ("z", deep_but_dropped)))]
    batch = check(request_of(proto_span(attributes=attributes)), AttributeLimits(kvlist=2))
    row = spans_rows(batch)[0]
    assert orjson.loads(row["attributes"]) == {"map": {"n0": "again", "n1": 1}, "list": [{"a": 1, "b": 2}],
                                               "over": {"x": 1, "y": 2}}
    assert row["dropped_attributes_count"] == 8 + 1 + 1  # the deep value is dropped unread, not refused


def test_a_value_replaced_later_still_counts_for_the_depth_limit_under_limits(implementation: str) -> None:
    """Replaced, a value is only checked for depth, all of it: even the part the kvlist limit would have dropped."""
    attributes = [("k", KV(("a", 1), ("b", nested(33)))), ("k", 1)]
    batch = check(request_of(proto_span(attributes=attributes)), AttributeLimits(kvlist=1))
    assert batch.accepted == 0 and batch.rejected == 1


def test_a_flood_of_distinct_keys_keeps_the_limit_and_counts_the_rest(implementation: str) -> None:
    """65,536 keys in one span (the shape of a hash-flooding request): 128 kept, the rest counted."""
    attributes = [(f"k{i:05d}", i) for i in range(65_536)]
    batch = check(request_of(proto_span(attributes=attributes)))
    row = spans_rows(batch)[0]
    assert len(orjson.loads(row["attributes"])) == 128
    assert row["dropped_attributes_count"] == 65_536 - 128


@compiled_only
def test_the_de_duplication_hash_is_keyed_per_process() -> None:
    """Unkeyed, one set of colliding keys works against every collector; keyed per process, it cannot be built."""
    import subprocess
    import sys

    code = ("from tracekit.collector.processors import _fastdecode as f; "
            "print([f.key_hash(k) for k in (b'gen_ai.system', b'a', b'')])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 2
    here = [fastdecode.key_hash(key) for key in (b"gen_ai.system", b"a", b"")]
    assert len(set(here)) == 3 and here == [fastdecode.key_hash(key) for key in (b"gen_ai.system", b"a", b"")]


def test_nesting_depth_limit(implementation: str) -> None:
    container = "array"
    spans = [proto_span(levels, attributes={"deep": nested(levels, container=container)}) for levels in (31, 32, 33)]
    spans.append(proto_span(40, attributes={"deep_bytes": nested(31, leaf=b"at depth 32", container=container)}))
    spans.append(proto_span(41, attributes={"ok_bytes": nested(30, leaf=b"at depth 31", container=container)}))
    # an overwritten value counts too: Python evaluates it before the duplicate replaces it
    spans.append(proto_span(42, attributes=[("k", nested(33, container=container)), ("k", 1)]))
    spans.append(proto_span(43, events=[Span.Event(name="e", attributes=kvs({"deep": nested(35)}))]))
    spans.append(proto_span(44, links=[Span.Link(trace_id=TRACE_ID, span_id=b"\x01" * 8,
                                                 attributes=kvs({"deep": nested(35)}))]))
    # a link with a bad id is skipped before its attributes are read, so its depth does not matter
    spans.append(proto_span(45, links=[Span.Link(trace_id=b"short", span_id=b"\x01" * 8,
                                                 attributes=kvs({"deep": nested(35)}))]))
    batch = check(request_of(*spans))
    assert [row["name"] for row in spans_rows(batch)] == ["span 31", "span 41", "span 45"]
    assert batch.rejected == 6 and batch.errors == ["attribute value nested deeper than 32 levels"]
    assert "span_links" not in batch.tables and "span_events" not in batch.tables


def wire_kvlists(levels: int) -> bytes:
    """`levels` kvlists inside each other, as AnyValue bytes (built by hand: upb refuses ~31 of them)."""
    value = field(1, b"leaf")
    for _ in range(levels):
        value = field(6, field(1, field(1, b"k") + field(2, value)))
    return value


@compiled_only
@pytest.mark.parametrize("levels, accepted", [(30, True), (31, True), (32, False), (33, False)])
def test_nesting_depth_limit_for_kvlists(levels: int, accepted: bool) -> None:
    span = proto_span(1).SerializeToString() + field(9, field(1, b"deep") + field(2, wire_kvlists(levels)))
    spans, _, _, rejections = call_c(raw_request([span]), resources=1)
    assert (spans[0], rejections) == ((1, []) if accepted else (0, [(3, 1)]))
    if accepted:
        expected: object = "leaf"
        for _ in range(levels):
            expected = {"k": expected}
        table = normalize._imported(spans, normalize._SPANS_TABLE_SCHEMA)
        table.validate(full=True)
        assert orjson.loads(table["attributes"][0].as_py()) == {"deep": expected}


def test_rejected_spans_and_skipped_links(implementation: str) -> None:
    zero_trace = proto_span(2)
    zero_trace.trace_id = b"\0" * 16
    spans = [
        proto_span(1, links=[Span.Link(trace_id=TRACE_ID, span_id=b"\x02" * 8, trace_state="a=b", flags=257),
                             Span.Link(trace_id=TRACE_ID, span_id=b"\x02" * 7),
                             Span.Link(trace_id=TRACE_ID, span_id=b"\x03" * 8)],
                   events=[Span.Event(time_unix_nano=5, name="e1"), Span.Event(name="e2")]),
        zero_trace, proto_span(3, trace_id=b"\x01" * 15), proto_span(0), proto_span(4, span_id=b"\x01" * 9),
        proto_span(5, parent_span_id=b"\x01" * 4), proto_span(6, parent_span_id=b"\x01" * 8),
        proto_span(7, start_time_unix_nano=2**63), proto_span(8, end_time_unix_nano=2**64 - 1),
        proto_span(9, events=[Span.Event(name="ok"), Span.Event(time_unix_nano=2**63, name="late")]),
        proto_span(10, end_time_unix_nano=5),  # ends before it starts: duration 0
    ]
    batch = check(request_of(*spans))
    rows = spans_rows(batch)
    assert [row["name"] for row in rows] == ["span 1", "span 6", "span 10"]
    assert rows[1]["parent_span_id"] == "01" * 8 and rows[0]["parent_span_id"] is None
    assert rows[2]["duration_ns"] == 0 and rows[0]["link_count"] == 3 and rows[0]["event_count"] == 2
    assert batch.rejected == 8
    assert batch.errors == [
        "span with an invalid trace_id (must be 16 bytes, not all zero)",
        "span with an invalid span_id (must be 8 bytes, not all zero)",
        "span with an invalid parent_span_id (must be empty or 8 bytes)",
        "span with a time past year 2262 (nanoseconds must fit a signed 64-bit integer)",
    ]
    links = table_rows(batch, "span_links")
    assert [(link["link_index"], link["trace_state"], link["flags"]) for link in links] == [(0, "a=b", 257),
                                                                                          (2, None, 0)]
    assert [event["name"] for event in table_rows(batch, "span_events")] == ["e1", "e2"]


def test_a_rejected_span_keeps_the_rows_of_an_earlier_span_with_the_same_ids(implementation: str) -> None:
    first = proto_span(1, events=[Span.Event(name="kept")])
    again = proto_span(1, attributes={"deep": nested(40)}, events=[Span.Event(name="dropped")])
    batch = check(request_of(first, again))
    assert batch.accepted == 1 and batch.rejected == 1
    assert [event["name"] for event in table_rows(batch, "span_events")] == ["kept"]


def test_kinds_status_codes_and_out_of_range_enums(implementation: str) -> None:
    spans = [proto_span(index + 1, kind=kind, status=Status(code=code, message=message))
             for index, (kind, code, message) in enumerate(
                 [(0, 0, ""), (1, 1, "fine"), (2, 2, "bad"), (3, 0, ""), (4, 0, ""), (5, 0, ""), (6, 3, "x"),
                  (-1, -1, ""), (2**31 - 1, 2**31 - 1, "")])]
    batch = check(request_of(*spans))
    rows = spans_rows(batch)
    assert [row["kind"] for row in rows] == ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER",
                                             "UNSPECIFIED", "UNSPECIFIED", "UNSPECIFIED"]
    assert [row["status_code"] for row in rows][:4] == ["UNSET", "OK", "ERROR", "UNSET"]
    assert rows[0]["status_message"] is None and rows[2]["status_message"] == "bad"


def test_resources_scopes_and_services(implementation: str) -> None:
    owners = []
    for index, service in enumerate(["a", None, "a", ""]):
        attributes = {"service.name": service} if service is not None else {"other": 1}
        owners.append(ResourceSpans(resource=ProtoResource(attributes=kvs(attributes)), schema_url=f"s{index % 2}",
                                    scope_spans=[ScopeSpans(scope=InstrumentationScope(name=f"scope{index}"),
                                                            spans=[proto_span(index + 1)]),
                                                 ScopeSpans(spans=[proto_span(index + 10)])]))
    owners.append(ResourceSpans())  # no spans: still a resource, as on the Python path
    batch = check(ExportTraceServiceRequest(resource_spans=owners).SerializeToString())
    rows = spans_rows(batch)
    assert [row["service_name"] for row in rows] == ["a", "a", None, None, "a", "a", "", ""]
    assert [row["scope_name"] for row in rows] == ["scope0", None, "scope1", None, "scope2", None, "scope3", None]
    assert rows[0]["resource_id"] == rows[4]["resource_id"]  # the same resource twice: one id
    assert rows[0]["resource_id"] != rows[2]["resource_id"]
    assert batch.tables["resources"].num_rows == 4


def test_empty_request_and_request_without_valid_spans(implementation: str) -> None:
    assert check(b"").tables == {}
    batch = check(request_of(proto_span(0)))
    assert batch.tables == {} and batch.rejected == 1


# --- protobuf wire rules: merged messages, last-wins scalars, unknown fields --------------------------------------

def test_repeated_singular_fields_merge_as_protobuf_says(implementation: str) -> None:
    first = proto_span(1, name="first", kind=2, status=Status(code=2), attributes={"a": 1},
                       events=[Span.Event(name="e1")])
    second = Span(name="second", status=Status(message="merged"), events=[Span.Event(name="e2")])
    second.attributes.extend(kvs({"a": 2, "b": 3}))
    array_then_array = (KeyValue(key="arr", value=av([1])).SerializeToString()
                        + KeyValue(value=av([2, 3])).SerializeToString())
    array_string_array = (KeyValue(key="mixed", value=av([1])).SerializeToString()
                          + KeyValue(value=av("s")).SerializeToString()
                          + KeyValue(value=av([9])).SerializeToString())
    kvlist_then_kvlist = (KeyValue(key="obj", value=av({"x": 1})).SerializeToString()
                          + KeyValue(value=av({"y": 2, "x": 3})).SerializeToString())
    key_twice = KeyValue(key="old", value=av("v")).SerializeToString() + KeyValue(key="new").SerializeToString()
    span_bytes = (first.SerializeToString() + second.SerializeToString() + field(9, array_then_array)
                  + field(9, array_string_array) + field(9, kvlist_then_kvlist) + field(9, key_twice))
    scope_twice = field(1, InstrumentationScope(name="one", version="v1").SerializeToString()) + field(
        1, InstrumentationScope(name="two").SerializeToString())
    resource = field(1, ProtoResource(attributes=kvs({"service.name": "svc"})).SerializeToString())
    payload = field(1, resource + field(2, scope_twice + field(2, span_bytes)))
    batch = check(payload)
    row = spans_rows(batch)[0]
    assert (row["name"], row["kind"], row["status_code"], row["status_message"]) == ("second", "SERVER", "ERROR",
                                                                                     "merged")
    assert (row["scope_name"], row["scope_version"]) == ("two", "v1")
    assert orjson.loads(row["attributes"]) == {"a": 2, "b": 3, "arr": [1, 2, 3], "mixed": [9],
                                               "obj": {"x": 3, "y": 2}, "new": "v"}
    assert row["event_count"] == 2


def test_unknown_fields_groups_and_wrong_wire_types_are_skipped(implementation: str) -> None:
    span = proto_span(1, name="kept").SerializeToString()
    unknown = (varint(99 << 3 | 0) + varint(2**64 - 1)  # unknown varint
               + varint(100 << 3 | 3) + varint(1 << 3 | 0) + b"\x01" + varint(101 << 3 | 3) + varint(101 << 3 | 4)
               + varint(100 << 3 | 4)  # a group holding a group
               + varint(5 << 3 | 0) + b"\x07"  # field 5 (name) as a varint: an unknown field, not the name
               + varint(102 << 3 | 5) + b"\x00\x00\x00\x00" + varint(103 << 3 | 1) + b"\x00" * 8
               # field number 0 is invalid, but upb takes it inside an unknown group (found by the fuzz harness)
               + varint(104 << 3 | 3) + varint(0 << 3 | 0) + b"\x01" + varint(0 << 3 | 2) + b"\x00"
               + varint(0 << 3 | 3) + varint(0 << 3 | 4) + varint(104 << 3 | 4))
    value = AnyValue(string_value="s").SerializeToString() + varint(1 << 3 | 0) + b"\x05"  # string as varint: unknown
    attribute = field(1, b"k") + field(2, value) + varint(3 << 3 | 0) + b"\x01"  # key_strindex
    batch = check(raw_request([span + unknown + field(9, attribute)]))
    row = spans_rows(batch)[0]
    assert row["name"] == "kept" and orjson.loads(row["attributes"]) == {"k": "s"}


def test_uint32_counts_keep_the_low_32_bits_of_a_longer_varint(implementation: str) -> None:
    """A dropped count sent as a varint wider than 32 bits is read as protobuf reads a uint32 (found by the fuzz
    harness: the compiled decoder clamped it instead)."""
    wide = 2**32 + 17_715_282
    span = proto_span(1, name="wide").SerializeToString()
    counts = b"".join(varint(number << 3 | 0) + varint(wide) for number in (10, 12, 14))
    event = varint(1 << 3 | 1) + b"\x01" * 8 + varint(4 << 3 | 0) + varint(wide)  # time, dropped_attributes_count
    link = field(1, b"\x02" * 16) + field(2, b"\x03" * 8) + varint(5 << 3 | 0) + varint(wide)
    batch = check(raw_request([span + counts + field(11, event) + field(13, link)]))
    row = spans_rows(batch)[0]
    assert (row["dropped_attributes_count"], row["dropped_events_count"], row["dropped_links_count"]) == (
        17_715_282, 17_715_282, 17_715_282)
    assert [table.column("dropped_attributes_count").to_pylist() for table in (
        batch.tables["span_events"], batch.tables["span_links"])] == [[17_715_282], [17_715_282]]


# --- random requests ----------------------------------------------------------------------------------------------

# Random requests per run; CI keeps it short, `TRACEKIT_FUZZ_EXAMPLES=5000 pytest ...` searches harder.
EXAMPLES = int(os.environ.get("TRACEKIT_FUZZ_EXAMPLES", "100"))
TYPED_KEYS = [key for keys in (*normalize._TYPED_STR_KEYS, *normalize._TYPED_INT_KEYS) for key in keys]
keys = st.sampled_from(["a", "b", "", "ключ", "x\ny", *TYPED_KEYS]) | st.text(max_size=6)
scalars = st.one_of(st.none(), st.text(max_size=12), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(), st.binary(max_size=10), st.integers(0, 2**31 - 1).map(
                        lambda n: AnyValue(string_value_strindex=n)))
scalar_values = scalars.map(av)
values = st.recursive(scalar_values, lambda children: st.one_of(
    st.lists(children, max_size=4).map(lambda items: AnyValue(array_value=ArrayValue(values=items))),
    st.lists(st.tuples(keys, children), max_size=4).map(lambda pairs: AnyValue(kvlist_value=KeyValueList(
        values=[KeyValue(key=k, value=v) for k, v in pairs])))), max_leaves=8)
# Around the depth limit (32). Arrays mostly: upb itself refuses kvlists nested ~30 deep (3 messages a level).
deep_values = st.one_of(
    st.builds(lambda levels, leaf: nested(levels, leaf), st.integers(29, 34),
              st.sampled_from(["s", b"b", 1.5, None, {"k": "v"}, [1]])),
    st.builds(lambda levels: nested(levels, container="kvlist"), st.integers(20, 27)))
ids16 = st.one_of(st.binary(min_size=16, max_size=16), st.just(b"\0" * 16), st.binary(max_size=18))
ids8 = st.one_of(st.binary(min_size=8, max_size=8), st.just(b"\0" * 8), st.binary(max_size=10))
times = st.one_of(st.integers(0, 2**63 - 1), st.integers(2**63 - 2, 2**64 - 1))


@st.composite
def keyvalue_bytes(draw) -> bytes:
    """A KeyValue on the wire; sometimes its value arrives in two pieces that protobuf merges."""
    key, value = draw(keys), draw(st.one_of(values, deep_values) if draw(st.integers(0, 9)) == 0 else values)
    encoded = KeyValue(key=key, value=value).SerializeToString()
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        encoded += KeyValue(value=draw(values)).SerializeToString()
    return encoded


@st.composite
def span_bytes(draw) -> bytes:
    """A span on the wire, sometimes as two fragments (scalars: last wins; repeated fields: appended)."""
    pieces = []
    for _ in range(draw(st.integers(1, 2))):
        span = Span(trace_id=draw(ids16), span_id=draw(ids8), parent_span_id=draw(st.one_of(st.just(b""), ids8)),
                    trace_state=draw(st.text(max_size=4)), name=draw(st.text(max_size=10)),
                    kind=draw(st.integers(-2, 7)), start_time_unix_nano=draw(times),
                    end_time_unix_nano=draw(times), flags=draw(st.integers(0, 2**32 - 1)),
                    dropped_attributes_count=draw(st.integers(0, 2**32 - 1)))
        if draw(st.booleans()):
            span.status.CopyFrom(Status(code=draw(st.integers(-1, 4)), message=draw(st.text(max_size=6))))
        for _ in range(draw(st.integers(0, 2))):
            span.events.append(Span.Event(time_unix_nano=draw(times), name=draw(st.text(max_size=5)),
                                          attributes=[KeyValue(key=draw(keys), value=draw(scalar_values))]))
        for _ in range(draw(st.integers(0, 2))):
            span.links.append(Span.Link(trace_id=draw(ids16), span_id=draw(ids8), trace_state=draw(st.text(max_size=3)),
                                        flags=draw(st.integers(0, 2**32 - 1)),
                                        attributes=[KeyValue(key=draw(keys), value=draw(scalar_values))]))
        attributes = b"".join(field(9, draw(keyvalue_bytes())) for _ in range(draw(st.integers(0, 6))))
        pieces.append(span.SerializeToString() + attributes)
    return b"".join(pieces)


@st.composite
def request_bytes(draw) -> bytes:
    payload = b""
    for _ in range(draw(st.integers(0, 3))):
        resource = ProtoResource(attributes=[KeyValue(key=k, value=v) for k, v in draw(
            st.lists(st.tuples(st.sampled_from(["service.name", "service.version", "x"]), scalar_values), max_size=3))])
        scope_spans = b""
        for _ in range(draw(st.integers(0, 2))):
            scope = InstrumentationScope(name=draw(st.text(max_size=5)), version=draw(st.text(max_size=3)))
            spans = b"".join(field(2, draw(span_bytes())) for _ in range(draw(st.integers(0, 3))))
            scope_spans += field(2, field(1, scope.SerializeToString()) + spans)
        payload += field(1, field(1, resource.SerializeToString()) + scope_spans
                         + field(3, draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0"])).encode()))
    return payload


@compiled_only
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request_bytes())
def test_random_requests_decode_the_same_on_both_paths(payload: bytes) -> None:
    check(payload)


# --- strings: JSON escapes and UTF-8 -----------------------------------------------------------------------------

# The compiled decoder copies plain text 8 bytes at a time and reserves output room for 4096 bytes of input at a
# time: special characters are placed on each side of both boundaries. Multibyte ones also straddle them.
SPECIAL = ['"', "\\", "\n", "\t", "\b", "\f", "\r", "\x00", "\x01", "\x1f", "\x7f", "/", "é", "€", "🎉", "\u2028"]
CHUNK = 4096
OFFSETS = [*range(0, 18), *range(CHUNK - 10, CHUNK + 10), 2 * CHUNK - 1, 2 * CHUNK]


def test_long_strings_with_escapes_at_word_and_chunk_boundaries_are_written_as_orjson_writes_them(
        implementation: str) -> None:
    for special in SPECIAL:
        attributes = [(f"at{offset}", "a" * offset + special + "z" * 9) for offset in OFFSETS]
        attributes += [(f"{special * 9}key", special), (f"run{special}", special * (CHUNK + 5)),
                       (f"end{special}", "q" * (CHUNK - 1) + special), ("gen_ai.request.model", "m" * 20 + special)]
        batch = check(request_of(proto_span(attributes=attributes)), NO_LIMITS)
        row = spans_rows(batch)[0]
        assert row["attributes"] == orjson.dumps(dict(attributes)).decode(), repr(special)
        assert row["request_model"] == "m" * 20 + special


def test_message_json_recorded_as_a_string_is_written_as_orjson_writes_it(implementation: str) -> None:
    """What content recording sends: JSON text inside a string, so a quote every few bytes, nested JSON escaped
    twice, non-ASCII text, over several of the decoder's 4 KiB chunks."""
    rng = random.Random(5)
    words = ["Zürich", "東京", "naïve", "emoji 🎉", 'say "hi"', "C:\\path\\x", "tab\there", "line\nbreak", "plain"]
    tool = orjson.dumps({"results": [{"city": rng.choice(words), "n": i} for i in range(40)]}).decode()
    messages = [{"role": "user", "parts": [{"type": "text", "content": " ".join(rng.choices(words, k=60))}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "response": tool}]}] * 8
    text = orjson.dumps(messages).decode()
    assert len(text.encode()) > 3 * CHUNK  # several chunks
    attributes = [("gen_ai.input.messages", text), ("gen_ai.tool.call.result", tool)]
    batch = check(request_of(proto_span(attributes=attributes)))
    assert spans_rows(batch)[0]["attributes"] == orjson.dumps(dict(attributes)).decode()


def test_long_strings_of_multibyte_characters_and_controls_only(implementation: str) -> None:
    attributes = [(f"{prefix}{character}", "a" * prefix + character * (2 * CHUNK // len(character.encode()) + 3))
                  for character in ["é", "€", "🎉", "\x00", '"'] for prefix in range(4)]
    batch = check(request_of(proto_span(attributes=attributes)), NO_LIMITS)
    assert spans_rows(batch)[0]["attributes"] == orjson.dumps(dict(attributes)).decode()


strings = st.builds(lambda padding, text: "x" * padding + text, st.sampled_from([0, 3, 8, 13, CHUNK - 5]),
                    st.lists(st.sampled_from(SPECIAL) | st.text(max_size=9), max_size=24).map("".join))


@compiled_only
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(strings, strings), min_size=1, max_size=4))
def test_random_strings_are_written_as_orjson_writes_them(pairs: list[tuple[str, str]]) -> None:
    batch = check(request_of(proto_span(attributes=pairs)), NO_LIMITS)
    assert spans_rows(batch)[0]["attributes"] == orjson.dumps(dict(pairs)).decode()


@compiled_only
def test_a_long_string_does_not_make_the_decoder_reserve_room_for_its_worst_case() -> None:
    """Output room is reserved for the worst case (six bytes out for each byte in) one 4 KiB chunk at a time: a
    16 MB message costs its own size in the attributes column, not six times it."""
    text = "plain words " * (16 * 2**20 // 12)
    payload = request_of(proto_span(attributes=[("gen_ai.input.messages", text)]))
    tracemalloc.start()
    try:
        spans, _, _, _ = call_c(payload, resources=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spans[0] == 1
    assert peak < 3 * len(text), f"peak {peak / 2**20:.0f} MiB decoding a {len(text) / 2**20:.0f} MiB string"


NOT_UTF8 = [b"\x80", b"\xbf", b"\xc3", b"\xc3\x28", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xf8\x88\x80\x80\x80", b"\xff", b"\xe2\x82", b"\xf0\x9f\x8e"]


@compiled_only
@pytest.mark.parametrize("bad", NOT_UTF8, ids=range(len(NOT_UTF8)))
def test_attribute_text_that_is_not_utf8_is_refused_wherever_it_sits(bad: bytes) -> None:
    """upb refuses these first in the collector; the compiled decoder checks on its own too (any input gives a
    result or a ValueError), in keys and values, inside plain runs, at word and chunk boundaries and at the end."""
    for offset in [0, 5, 7, 8, 9, CHUNK - 1, CHUNK, CHUNK + 1]:
        for text in (b"a" * offset + bad + b"z" * 20, b"a" * offset + bad):
            for key, value in ((b"k", text), (text, b"v")):
                keyvalue = field(1, key) + field(2, field(1, value))
                span = Span(trace_id=TRACE_ID, span_id=b"\x01" * 8).SerializeToString() + field(9, keyvalue)
                with pytest.raises(ValueError, match="not valid UTF-8"):
                    call_c(field(1, field(2, field(2, span))), resources=1)


# --- hostile bytes straight into the C function ------------------------------------------------------------------

HOSTILE = [
    b"\x0a",                                          # a tag without its length
    b"\x0a\x05abc",                                   # length past the end
    b"\x0a" + b"\xff" * 9 + b"\x01",                  # a 2**63 length
    b"\x08" + b"\xff" * 10 + b"\x01",                 # an 11-byte varint
    b"\x08" + b"\x80" * 9,                            # a truncated varint
    b"\x00\x00",                                      # field number 0
    b"\x0e", b"\x0f",                                 # wire types 6 and 7
    b"\x0c",                                          # end of a group that was never opened
    b"\x0b" * 200,                                    # groups nested 200 deep, never closed
    b"\x0b\x14",                                      # a group closed by another field's end
    b"\x09\x00\x00",                                  # a truncated fixed64
    b"\x0d\x00",                                      # a truncated fixed32
    field(1, field(2, field(2, b"\x80"))),            # a malformed span inside valid framing
    field(1, field(2, field(2, field(5, b"\xc3\x28")))),  # a span name that is not UTF-8
    field(1, field(2, field(2, Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8).SerializeToString()
                            + field(9, field(1, b"\xed\xa0\x80") + field(2, field(1, b"v")))))),  # a surrogate key
]


@compiled_only
@pytest.mark.parametrize("payload", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bytes_raise_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError, match="malformed protobuf"):
        call_c(payload, resources=1)


@compiled_only
def test_deeply_nested_values_on_the_wire_are_refused_without_recursing() -> None:
    value = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(5_000):  # far past upb's own limit (100 messages); only the C function sees it
        value = field(5, field(1, value))
    payload = field(1, field(2, field(2, proto_span(1).SerializeToString() + field(9, field(1, b"k") + field(2, value)))))
    spans, _, _, rejections = call_c(payload, resources=1)
    assert spans[0] == 0 and rejections == [(3, 1)]


@compiled_only
def test_mismatched_resources_and_bad_arguments_raise() -> None:
    payload = request_of(proto_span(1))
    with pytest.raises(ValueError, match="more resource_spans"):
        call_c(payload, resources=0)
    with pytest.raises(ValueError, match="fewer resource_spans"):
        call_c(payload, resources=2)
    with pytest.raises(ValueError, match="max_depth"):
        fastdecode.decode_traces(payload, [(1, "s")], (), (), 10_000)
    with pytest.raises(TypeError):
        fastdecode.decode_traces(payload, [(1, 2)], (), (), 32)
    with pytest.raises(TypeError):
        fastdecode.decode_traces(payload, [(1, "s")], ("not a tuple of tuples",), (), 32)


@compiled_only
@settings(max_examples=5 * EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_return_or_raise_value_error(payload: bytes) -> None:
    try:
        call_c(payload)
    except ValueError:
        pass


def test_a_few_seconds_of_the_fuzz_harness(implementation: str) -> None:
    """Mutations of valid requests of all three signals (tests/collector/fuzz_decoder.py, built-in mutator): the
    trace decoders keep every span accounted for, and the compiled one returns or raises ValueError and agrees with
    the Python one whenever upb accepts. A fixed number of mutants from a fixed seed, so every machine tries the same
    inputs; longer runs, with atheris and under sanitizers: docs/performance.md."""
    counts = fuzz_decoder.run_builtin(0, seed=20261206, inputs=int(os.environ.get("TRACEKIT_FUZZ_INPUTS", "4000")))
    assert counts["traces accepted"] > 20 and counts["traces refused"] > 20  # both kinds of input were exercised


# --- memory ------------------------------------------------------------------------------------------------------

@compiled_only
def test_no_memory_or_reference_leaks() -> None:
    payload = request_of(*[proto_span(index, attributes={**{k: v for k, v in SDK_ATTRIBUTES.items() if k != "huge"},
                                                         "obj": {"a": [1, b"x"]}},
                                      events=[Span.Event(name="e", attributes=kvs({"k": [1.5]}))],
                                      links=[Span.Link(trace_id=TRACE_ID, span_id=b"\x02" * 8)])
                           for index in range(1, 41)])
    broken = payload[:-7]
    deep = request_of(proto_span(1, attributes={"deep": nested(40)}))
    owners = [(1, "svc")]
    keys = (normalize._TYPED_STR_KEYS, normalize._TYPED_INT_KEYS)

    request = ExportTraceServiceRequest.FromString(payload)

    def run(times: int) -> None:
        for _ in range(times):
            fastdecode.decode_traces(payload, owners, *keys, 32)  # capsules dropped without import
            fastdecode.decode_traces(deep, owners, *keys, 32)
            decode_traces_payload(payload, request).tables.clear()  # capsules adopted, then released, by Arrow
            with pytest.raises(ValueError):
                fastdecode.decode_traces(broken, owners, *keys, 32)

    run(50)
    gc.collect()
    references = [sys.getrefcount(item) for item in (payload, owners, owners[0], keys[0])]
    process = psutil.Process()
    rss_before = process.memory_info().rss
    tracemalloc.start()
    try:
        run(20)
        gc.collect()
        traced_before = tracemalloc.get_traced_memory()[0]
        run(400)
        gc.collect()
        traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
    finally:
        tracemalloc.stop()
    run(400)
    gc.collect()
    assert [sys.getrefcount(item) for item in (payload, owners, owners[0], keys[0])] == references
    assert traced_growth < 64 * 1024, f"{traced_growth} bytes still allocated after 400 decodes"
    assert process.memory_info().rss - rss_before < 16 * 2**20


@compiled_only
def test_pack_column() -> None:
    length, nulls, validity, offsets, data = fastdecode.pack_column(["a", None, "ü", ""], "s")
    assert (length, nulls, data) == (4, 1, "aü".encode())
    assert validity[0] & 0b1111 == 0b1101 and len(offsets) == 5 * 4
    assert fastdecode.pack_column([1, None, -(2**63)], "q")[:2] == (3, 1)
    with pytest.raises(TypeError):
        fastdecode.pack_column([1], "s")
    with pytest.raises(OverflowError):
        fastdecode.pack_column([2**63], "q")
    with pytest.raises(ValueError):
        fastdecode.pack_column([], "x")


# --- wiring -------------------------------------------------------------------------------------------------------

@compiled_only
def test_the_collector_pipeline_decodes_traces_through_the_compiled_path(monkeypatch: pytest.MonkeyPatch) -> None:
    payload, _ = sdk_payload()
    through_pipeline = decode_payload("traces", payload)
    calls = []
    original = fastdecode.decode_traces
    monkeypatch.setattr(fastdecode, "decode_traces", lambda *args: calls.append(1) or original(*args))
    assert_same(through_pipeline, decode_payload("traces", payload))
    assert calls == [1]
    # without the extension (no compiler at install time) the same request takes the Python path, same result
    monkeypatch.setattr(normalize, "_fastdecode", None)
    assert_same(through_pipeline, decode_payload("traces", payload))
    assert calls == [1]


@compiled_only
def test_decode_traces_from_a_request_object_takes_the_compiled_path_too() -> None:
    payload, _ = sdk_payload()
    request = ExportTraceServiceRequest.FromString(payload)
    assert_same(_decode_traces_python(request), normalize.decode_traces(request))


@compiled_only
def test_a_request_the_compiled_decoder_refuses_is_decoded_in_python(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Only a column past 2 GiB makes the compiled decoder refuse what upb accepted; a stand-in raises instead."""

    class Refusing:
        pack_column = staticmethod(fastdecode.pack_column)

        @staticmethod
        def decode_traces(*_: object) -> None:
            raise ValueError("request too large: a string column passed 2 GiB")

    payload, _ = sdk_payload()
    request = ExportTraceServiceRequest.FromString(payload)
    monkeypatch.setattr(normalize, "_fastdecode", Refusing)
    with caplog.at_level("WARNING", logger=normalize.log.name):
        batch = decode_traces_payload(payload, request)
    assert_same(_decode_traces_python(request), batch)
    assert batch.accepted == 8
    assert "compiled trace decoder failed (request too large" in caplog.text


def test_spans_sent_by_the_otlp_exporter_are_stored_by_the_collector(implementation: str, collector) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "fast-decode-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("tests.fastdecode")
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12, "text": 'a "quoted"\nline'}) as span:
        span.add_event("gen_ai.choice", {"index": 0})
    provider.shutdown()
    rows = collector.reader().sql(
        "SELECT name, kind, service_name, request_model, input_tokens, attributes, event_count FROM spans").to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["name"], row["kind"], row["service_name"]) == ("chat gpt-4o", "CLIENT", "fast-decode-e2e")
    assert (row["request_model"], row["input_tokens"], row["event_count"]) == ("gpt-4o", 12, 1)
    assert orjson.loads(row["attributes"])["text"] == 'a "quoted"\nline'
    events = collector.reader().sql("SELECT name, attributes FROM span_events").to_pylist()
    assert events == [{"name": "gen_ai.choice", "attributes": '{"index":0}'}]


@compiled_only
def test_decoding_in_several_threads_at_once_gives_the_same_tables() -> None:
    """The compiled decoder runs without the GIL, so calls from several threads really run together: each must still
    produce exactly what a call on its own produces."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(3)
    payloads = [request_of(*[proto_span(i + 1, name=f"span {n}-{i}", attributes=[
        ("gen_ai.request.temperature", rng.random()), ("gen_ai.usage.input_tokens", rng.randrange(10**6)),
        ("text", "x" * rng.randrange(2000)), ("nested", {"a": [1, 2.5, {"b": "c"}]})]) for i in range(50)])
        for n in range(8)]
    alone = [decode_payload("traces", payload).tables["spans"] for payload in payloads]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            together = list(pool.map(lambda payload: decode_payload("traces", payload).tables["spans"], payloads))
            assert all(a.equals(b) for a, b in zip(alone, together))


def _comma_decimal_locale(tmp_path) -> str | None:
    """A locale whose decimal point is a comma: an installed one, else one built with localedef; None if neither."""
    import locale
    import shutil
    import subprocess

    def usable(name: str) -> bool:
        try:
            locale.setlocale(locale.LC_NUMERIC, name)
            return locale.localeconv()["decimal_point"] == ","
        except locale.Error:
            return False
        finally:
            locale.setlocale(locale.LC_NUMERIC, "C")

    for name in ("de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"):
        if usable(name):
            return name
    if shutil.which("localedef") is None:
        return None
    built = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(tmp_path / "de_DE.UTF-8")],
                           capture_output=True)
    if built.returncode not in (0, 1):  # 1: built with warnings
        return None
    os.environ["LOCPATH"] = str(tmp_path)
    return "de_DE.UTF-8" if usable("de_DE.UTF-8") else None


@compiled_only
def test_doubles_do_not_follow_the_applications_decimal_comma(tmp_path) -> None:
    """The compiled decoder formats doubles with the C library, whose printf and strtod use the process's locale:
    an application that switched LC_NUMERIC to a decimal comma must still get JSON numbers with a point."""
    import locale

    saved_locpath = os.environ.get("LOCPATH")
    try:
        name = _comma_decimal_locale(tmp_path)
        if name is None:
            pytest.skip("no locale with a decimal comma can be found or built here")
        doubles = [0.1, 2.5, 1e-07, 2.0**-24, 123.456, 1e16, -3.25e-05]
        payload = request_of(proto_span(attributes=[(f"d{i}", d) for i, d in enumerate(doubles)]))
        locale.setlocale(locale.LC_NUMERIC, name)
        try:
            batch = decode_payload("traces", payload)
        finally:
            locale.setlocale(locale.LC_NUMERIC, "C")
    finally:
        if saved_locpath is None:
            os.environ.pop("LOCPATH", None)
        else:
            os.environ["LOCPATH"] = saved_locpath
    text = batch.tables["spans"].column("attributes")[0].as_py()
    assert text == orjson.dumps({f"d{i}": d for i, d in enumerate(doubles)}).decode()
