"""Fuzz harness for the OTLP decoders: the compiled trace decoder against the pure-Python one, on any bytes.

Run it (bounded in time) from the repository root:

    python -m tests.collector.fuzz_decoder --seconds 60            # atheris (libFuzzer) when installed
    python -m tests.collector.fuzz_decoder --seconds 60 --builtin  # the built-in mutator, no extra package
    python -m tests.collector.fuzz_decoder --replay crash-<sha1>   # check one saved finding
    scripts/sanitize_decoder.sh                                    # the same under ASan/UBSan

What every input is checked for (`check_input`; `--signals` picks the decoders, traces by default):
- traces: when upb accepts the bytes, the compiled decoder must not refuse them and must give the same Batch as the
  Python decoder (tables, types, values, counts, rejection messages), and every span is either stored or rejected;
  when upb refuses them, the compiled decoder, fed them directly, must return or raise ValueError (the sanitizer
  build turns any memory or undefined-behaviour error on the way into a crash);
- logs and metrics (pure Python): the collector's decode step answers with a Batch or InvalidRequest, and every log
  record / metric accounts for stored rows or a rejection.
Seeds are valid requests of all three signals written by the real OpenTelemetry SDK encoders, plus requests with
what the SDK cannot express (kvlists, bytes, deep nesting, repeated keys). Every input goes to each chosen decoder,
so a log or metric request's bytes also reach the trace decoders as an oddly shaped trace request.

`tests/collector/test_fastdecode.py` runs a few seconds of this harness with the built-in mutator in every pytest run.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit.collector.processors import normalize
from tracekit.collector.processors.decode import InvalidRequest, decode_payload
from tracekit.collector.processors.normalize import Batch

JSON_COLUMNS = {"spans": {"attributes"}, "span_events": {"attributes"}, "span_links": {"attributes"},
                "resources": {"attributes"}}


# --- comparing two Batches -----------------------------------------------------------------------------------------

def _canonical(text: str | None) -> bytes | None:
    """JSON text in one spelling (orjson's), so equal values compare equal whatever the number formatting."""
    return None if text is None else orjson.dumps(orjson.loads(text))


def _plain(column: pa.ChunkedArray) -> list:
    """Python values; timestamps as their int64 nanoseconds (datetime cannot hold them)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_pylist()


def assert_same(expected: Batch, actual: Batch) -> None:
    """The whole Batch of the compiled path equals the Python path's: counts, messages, tables, types, values."""
    assert (actual.accepted, actual.rejected, actual.errors) == (expected.accepted, expected.rejected, expected.errors)
    assert actual.tables.keys() == expected.tables.keys()
    for name, table in expected.tables.items():
        other = actual.tables[name]
        other.validate(full=True)  # offsets in range, strings valid UTF-8
        if name == "resources":  # first_seen is the wall clock at decode time
            table, other = table.drop_columns(["first_seen"]), other.drop_columns(["first_seen"])
        assert other.schema == table.schema, name
        for column in table.column_names:
            if column in JSON_COLUMNS.get(name, ()):
                want = [_canonical(v) for v in table[column].to_pylist()]
                assert [_canonical(v) for v in other[column].to_pylist()] == want, f"{name}.{column}"
            elif not other[column].equals(table[column]):
                assert _plain(other[column]) == _plain(table[column]), f"{name}.{column}"
                raise AssertionError(f"{name}.{column}: equal values, different arrays")


# --- seeds -----------------------------------------------------------------------------------------------------------

class _SequentialIds:
    """Trace and span ids in sequence, so the seed requests (and what a fixed seed makes of them) repeat exactly."""

    def __init__(self) -> None:
        self._next = 0

    def generate_span_id(self) -> int:
        self._next += 1
        return self._next

    def generate_trace_id(self) -> int:
        self._next += 1
        return self._next << 64 | self._next

    def is_trace_id_random(self) -> bool:
        return False


def seeds() -> list[bytes]:
    """Valid requests of the three signals, as the OpenTelemetry SDK's OTLP encoders write them, and hand-built ones."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as log_export
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    resource = Resource.create({"service.name": "fuzz", "service.version": "1.0"})
    span_exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource, id_generator=_SequentialIds())
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("fuzz.seeds", "0.1")
    log_exporter = getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
    log_exporter = log_exporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(log_export.SimpleLogRecordProcessor(log_exporter))
    logger = logger_provider.get_logger("fuzz.seeds")
    with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.SERVER, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12,
            "gen_ai.request.temperature": 0.25, "tags": ["a", "b"], "ok": True, "text": 'quote " é\n'}) as root:
        root.add_event("gen_ai.user.message", {"content": "hi", "n": 3})
        child = tracer.start_span("execute_tool search", links=[Link(root.get_span_context(), {"why": "follows"})])
        child.set_status(Status(StatusCode.ERROR, "boom"))
        child.end()
        logger.emit(body={"role": "user", "content": ["hello", 1, 2.5]}, severity_number=SeverityNumber.INFO,
                    severity_text="INFO", attributes={"event.name": "gen_ai.user.message", "k": [1, 2]})
    logger.emit(body="plain text", severity_number=SeverityNumber.ERROR)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    traces = encode_spans(span_exporter.get_finished_spans()).SerializeToString()
    logs = encode_logs(log_exporter.get_finished_logs()).SerializeToString()

    reader = InMemoryMetricReader()
    meter = MeterProvider(resource=resource, metric_readers=[reader]).get_meter("fuzz.seeds")
    meter.create_counter("tokens").add(5, {"gen_ai.token.type": "input"})
    meter.create_histogram("duration", unit="s").record(0.5, {"op": "chat"})
    meter.create_up_down_counter("queue").add(-2)
    meter.create_gauge("temperature").set(21.5)
    metrics = encode_metrics(reader.get_metrics_data()).SerializeToString()

    def av(value: object) -> AnyValue:
        if isinstance(value, dict):
            return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=av(v)) for k, v in value.items()]))
        if isinstance(value, list):
            return AnyValue(array_value=ArrayValue(values=[av(item) for item in value]))
        if isinstance(value, bytes):
            return AnyValue(bytes_value=value)
        return AnyValue(string_value=value) if isinstance(value, str) else AnyValue(double_value=value)

    deep: object = "leaf"
    for _ in range(31):
        deep = [deep]
    span = Span(trace_id=bytes(range(1, 17)), span_id=b"\x01" * 8, parent_span_id=b"\x02" * 8, name="hand-built",
                start_time_unix_nano=1, end_time_unix_nano=2,
                attributes=[KeyValue(key="obj", value=av({"a": [1.5, b"\x00\xff", {"b": "c"}]})),
                            KeyValue(key="dup", value=av("first")), KeyValue(key="dup", value=av("last")),
                            KeyValue(key="deep", value=av(deep))],
                events=[Span.Event(name="e", attributes=[KeyValue(key="k", value=av("v"))])],
                links=[Span.Link(trace_id=bytes(range(1, 17)), span_id=b"\x03" * 8, trace_state="a=b")])
    hand_built = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    return [traces, logs, metrics, hand_built.SerializeToString()]


# --- one input ---------------------------------------------------------------------------------------------------

def _top_level_records(data: bytes) -> int:
    """How many field-1 records the request's top level holds (the compiled decoder needs one owner for each);
    counted up to the first malformed byte."""
    count, position = 0, 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while position < len(data) and shift < 64:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise ValueError

    try:
        while position < len(data):
            tag = varint()
            wire_type = tag & 7
            if wire_type == 0:
                varint()
            elif wire_type == 1:
                position += 8
            elif wire_type == 2:
                position += varint()
                count += tag >> 3 == 1
            elif wire_type == 5:
                position += 4
            else:
                break
    except ValueError:
        pass
    return count


def _compiled(payload: bytes, owners: int) -> object:
    """The compiled decoder's own answer (normalize falls back to Python when it raises, which would hide a bug)."""
    return normalize._fastdecode.decode_traces(payload, [(index, "svc") for index in range(owners)],
                                               normalize._TYPED_STR_KEYS, normalize._TYPED_INT_KEYS,
                                               normalize.MAX_DEPTH)


def _items(request: object, signal: str) -> int:
    if signal == "traces":
        return sum(len(scope.spans) for owner in request.resource_spans for scope in owner.scope_spans)
    if signal == "logs":
        return sum(len(scope.log_records) for owner in request.resource_logs for scope in owner.scope_logs)
    return sum(len(scope.metrics) for owner in request.resource_metrics for scope in owner.scope_metrics)


REQUEST_TYPES = {"traces": ExportTraceServiceRequest, "logs": ExportLogsServiceRequest,
                 "metrics": ExportMetricsServiceRequest}
ROWS = {"traces": "spans", "logs": "logs", "metrics": "metric_points"}


def check_input(data: bytes, signals: tuple[str, ...] = ("traces",)) -> dict[str, str]:
    """Run `data` through every decoder of `signals`; raise AssertionError (or the decoder's own error) on a bug.

    Returns each signal's outcome: "accepted" (upb parsed it and the decoders agreed) or "refused"."""
    outcomes = {}
    for signal in signals:
        request_type = REQUEST_TYPES[signal]
        try:
            request = request_type.FromString(data)
        except Exception:  # noqa: BLE001 - upb refused the bytes; the receivers answer 400 before any decoder runs
            request = None
        if request is None:
            if signal == "traces" and normalize._fastdecode is not None:
                try:
                    _compiled(data, _top_level_records(data))
                except ValueError:
                    pass
            outcomes[signal] = "refused"
            continue
        if signal == "traces":
            expected = normalize._decode_traces_python(request)
            if normalize._fastdecode is not None:
                _compiled(data, len(request.resource_spans))  # must not raise: upb accepted these bytes
                assert_same(expected, normalize.decode_traces_payload(data, request))
            batch = expected
        else:
            try:
                batch = decode_payload(signal, data)
            except InvalidRequest:
                outcomes[signal] = "refused"
                continue
        table = batch.tables.get(ROWS[signal])
        if signal != "metrics":  # a metric holds any number of points: only spans and log records are one row each
            assert batch.accepted + batch.rejected == _items(request, signal), signal
            assert (0 if table is None else table.num_rows) == batch.accepted, signal
        if table is not None:
            table.validate(full=True)
        outcomes[signal] = "accepted"
    return outcomes


# --- the built-in mutator (no atheris) -----------------------------------------------------------------------------

def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """A few byte-level edits of `data`: overwrite, flip, delete, insert, truncate, splice with another input."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out = bytearray(b"\x0a")
        position = rng.randrange(len(out))
        operation = rng.randrange(6)
        if operation == 0:
            out[position] = rng.randrange(256)
        elif operation == 1:
            out[position] ^= 1 << rng.randrange(8)
        elif operation == 2:
            del out[position:position + rng.randint(1, 8)]
        elif operation == 3:
            out[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif operation == 4:
            del out[position:]
        else:
            other = rng.choice(corpus)
            start = rng.randrange(len(other) or 1)
            out[position:position] = other[start:start + rng.randint(1, 64)]
    return bytes(out)


def run_builtin(seconds: float, seed: int = 0, signals: tuple[str, ...] = ("traces",),
                inputs: int | None = None) -> dict[str, int]:
    """Mutate the seeds for `seconds`, or for exactly `inputs` mutants when given (the same ones on any machine);
    returns how many inputs each signal's decoders accepted and refused."""
    rng = random.Random(seed)
    corpus = seeds()
    counts = {f"{signal} {outcome}": 0 for signal in signals for outcome in ("accepted", "refused")}
    deadline = time.monotonic() + seconds
    for data in corpus:
        check_input(data, signals)
    tried = 0
    while (tried < inputs) if inputs is not None else (time.monotonic() < deadline):
        tried += 1
        data = mutate(rng.choice(corpus), rng, corpus)
        try:
            outcomes = check_input(data, signals)
        except BaseException:
            path = Path(f"crash-{hashlib.sha1(data).hexdigest()}")
            path.write_bytes(data)
            sys.stderr.write(f"failing input saved as {path}; replay: python -m tests.collector.fuzz_decoder "
                             f"--replay {path}\n")
            raise
        for signal, outcome in outcomes.items():
            counts[f"{signal} {outcome}"] += 1
        if outcomes.get("traces") == "accepted" and len(corpus) < 2000 and rng.random() < 0.05:
            corpus.append(data)  # keep some accepted mutants: later edits then reach deeper
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after -- go to libFuzzer (atheris), e.g. -- -dict=FILE.")
    parser.add_argument("--seconds", type=float, default=60, help="how long to fuzz (default 60)")
    parser.add_argument("--builtin", action="store_true", help="use the built-in mutator even if atheris is there")
    parser.add_argument("--corpus", type=Path, help="a corpus directory to grow (default: a fresh temporary one)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed of the built-in mutator")
    parser.add_argument("--replay", type=Path, help="check one saved input (a crash-* file) and exit")
    parser.add_argument("--signals", default="traces",
                        help="decoders to check, comma-separated: traces (compiled and Python, the default), logs, "
                             "metrics (Python)")
    args, fuzzer_args = parser.parse_known_args(argv)
    signals = tuple(name.strip() for name in args.signals.split(","))
    if not set(signals) <= set(REQUEST_TYPES):
        parser.error(f"--signals takes {', '.join(REQUEST_TYPES)}")
    fuzzer_args = [arg for arg in fuzzer_args if arg != "--"]
    if args.replay:
        print(check_input(args.replay.read_bytes(), signals))
        return 0
    decoder = getattr(normalize._fastdecode, "__file__", None)
    print(f"compiled decoder: {decoder or 'not built: only the Python decoders are fuzzed'}", flush=True)
    try:
        import atheris
    except ImportError:
        atheris = None
    if args.builtin or atheris is None:
        print(f"built-in mutator, seed {args.seed}, {args.seconds:g} s", flush=True)
        counts = run_builtin(args.seconds, args.seed, signals)
        print(", ".join(f"{key}: {value}" for key, value in counts.items()))
        return 0
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="tracekit-fuzz-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(seeds()):
        (corpus / f"seed-{index}").write_bytes(data)
    print(f"atheris (libFuzzer), corpus {corpus}, {args.seconds:g} s", flush=True)
    atheris.instrument_all()  # coverage feedback from the Python decoders (the C code has none unless clang-built)
    atheris.Setup([sys.argv[0], f"-max_total_time={max(1, int(args.seconds))}", "-rss_limit_mb=4096",
                   *fuzzer_args, str(corpus)], lambda data: check_input(data, signals))
    atheris.Fuzz()  # exits the process: 0 when the time is up, non-zero on a finding (input saved as crash-*)
    return 0


if __name__ == "__main__":
    sys.exit(main())
