"""What tracekit's instrumentation costs per call.

Run: `python bench/overhead.py [--quick] [--headline] [--metrics] [--against PYTHON]` (`--metrics`: the secondary
figures with a global MeterProvider too, so the GenAI metrics are recorded there as well, under the names
`OTEL_SEMCONV_STABILITY_OPT_IN` picks; without it they are skipped as they are when an application sets no
MeterProvider; `--headline`: the model call's figures only; `--against PYTHON`: the content-off headline measured
by that interpreter's tracekit too, its rounds interleaved with ours, with the ratios; `--only SIDE --calls N`: one
side's calls and nothing else, for an instruction counter). Everything is measured in this one process, interleaved (baseline,
ours, baseline, ours, ...), in CPU time of this process, and reported as the fastest round of each side (as timeit
does: other work on the machine only ever adds time, so the minimum is the closest to what the code costs), so the
figures hold on a busy machine where wall-clock figures drift. Spans go to a TracerProvider whose one processor
drops them: the figures are the instrumentation's own work, not export.

The headline: a LangChain chat model call
  `model.invoke(messages)` on a chat model that answers at once (no network: a six-message history with a tool
  call, an answer with usage and a finish reason), with `LangChainInstrumentor` off and on. Printed as
  microseconds per call for each side, LangChain's own cost being the side without instrumentation, and the
  difference, which is what instrumenting adds to every model call (target, content off: at most +150 us).
  Five ways: without a MeterProvider (no metrics recorded); with the MeterProvider `tracekit.configure()` sets up
  (its views and exemplar filter; an in-memory reader in place of the exporting one, which works only at export),
  the side the target is judged on; the same with exemplars on (`configure(exemplars=True)`); the same with the
  span processors `configure()` adds too (redaction, batching, start records; exporters that drop), which is all an
  application configured as the README says runs; and the floor: langchain-core's dispatch to a handler of our
  own that makes the same span and the same metric records with nothing to read, so that "as configured" minus
  the floor is tracekit's own work.

Secondary, each against a bare OpenTelemetry span with the same attributes, made current (as the handler's span
is, so that spans made during the call nest under it, and as a span written by hand would be):
  tool    `@tracekit.tool` call            vs  start_as_current_span("execute_tool ...")
  agent   `with tracekit.agent(...)`       vs  start_as_current_span("invoke_agent ...")
  chat    the LangChain handler's start +  vs  start_as_current_span("chat ...", CLIENT, the same final attributes)
          end callbacks for the same call
each with content recording off and on with the default redaction policy.
Agents in flight: the start record `tracekit.configure()` sends for every span as it starts (tracekit.live: the
record built, redacted by the log processor, queued for batching and exported by a dropping exporter, its CPU time
counted too) against the bare span of the same scenario in the same run, as microseconds per span start.
Redaction throughput (target: at least 50 MB/s) on realistic message JSON, and on adversarial digit-dense text.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

if "--worker" not in sys.argv:  # the --against worker imports its own interpreter's tracekit, not this checkout's
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.metrics import NoOpMeterProvider  # noqa: E402
from opentelemetry.sdk._logs.export import LogRecordExportResult, LogRecordExporter  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

import tracekit  # noqa: E402
from tracekit.content import ContentMode, ContentSettings, get_content_settings, using_content_settings  # noqa: E402
from tracekit.redaction import RedactionPolicy  # noqa: E402
from tracekit.tracing import using_tracer_provider  # noqa: E402


class Drop(SpanProcessor):
    """Finished spans go nowhere: we time span work, not export."""

    def on_end(self, span: Any) -> None:
        return None


class DropSpans(SpanExporter):
    """An exporter whose batches go nowhere (configure()'s pipeline up to the wire)."""

    def export(self, spans: Any) -> Any:
        return SpanExportResult.SUCCESS


class DropLogs(LogRecordExporter):
    """DropSpans for log records."""

    def export(self, batch: Any) -> Any:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def timed(fn: Callable[[], Any], n: int) -> float:
    """CPU seconds of this process per call of `fn` over `n` calls. CPU time, not wall-clock time: on a machine
    shared with other work the wall clock mostly measures the neighbours, while CPU time is what the calls cost."""
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def fastest_rounds(bare: Callable[[], Any], ours: Callable[[], Any], n: int, rounds: int) -> tuple[float, float]:
    """Interleaved rounds of `bare` and `ours` (after a warm-up); the CPU seconds per call of each in its fastest
    round."""
    b, o = fastest_rounds_of([bare, ours], n, rounds)
    return b, o


def fastest_rounds_of(sides: list[Callable[[], Any]], n: int, rounds: int) -> list[float]:
    """`fastest_rounds` for any number of sides, interleaved in each round."""
    times: list[list[float]] = [[] for _ in sides]
    for side in sides:
        timed(side, n // 10)
    for _ in range(rounds):
        for side, side_times in zip(sides, times):
            side_times.append(timed(side, n))
    return [min(side_times) for side_times in times]


def compare(name: str, bare: Callable[[], Any], ours: Callable[[], Any], n: int, rounds: int,
            labels: tuple[str, str] = ("bare", "tracekit")) -> tuple[float, float]:
    """`fastest_rounds`, printed."""
    b, o = fastest_rounds(bare, ours, n, rounds)
    print(f"  {name:<28} {labels[0]} {b * 1e6:7.1f} us CPU   {labels[1]} {o * 1e6:7.1f} us CPU   ratio {o / b:5.2f}x"
          f"   (+{(o - b) * 1e6:.1f} us)")
    return b, o


# --- scenarios ----------------------------------------------------------------------------------------------------------


def tool_scenario(tracer: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def weather(city: str, unit: str = "C") -> str:
        return f"rainy in {city}"

    traced = tracekit.tool(weather)
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "weather", "gen_ai.tool.type": "function"}

    def bare() -> Any:
        with tracer.start_as_current_span("execute_tool weather", attributes=attrs):
            return weather("Paris", unit="F")

    return bare, lambda: traced("Paris", unit="F")


def agent_scenario(tracer: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
             "gen_ai.conversation.id": "conv-1"}

    def bare() -> None:
        with tracer.start_as_current_span("invoke_agent planner", attributes=attrs):
            pass

    def ours() -> None:
        with tracekit.agent("planner", conversation_id="conv-1"):
            pass

    return bare, ours


def conversation() -> tuple[list[Any], Callable[[], Any]]:
    """The chat case's input (six messages with a tool call and its result) and a maker of its answer."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    prose = ("I'd like to fly from Lisbon to Kyoto in late March, ideally a morning departure with one stop; "
             "my budget is about 900 euros and I can be reached at ann@example.com. ")
    messages = [SystemMessage("You are a travel agent. Be concise."), HumanMessage(prose * 3),
                AIMessage("", tool_calls=[{"name": "search_flights", "args": {"from": "LIS", "to": "KIX"}, "id": "c1"}]),
                ToolMessage("3 options: TK 1752 09:40 EUR 814; LH 1166 12:05 EUR 851", tool_call_id="c1"),
                HumanMessage("Which one is best?"), AIMessage("TK 1752: cheapest and leaves in the morning.")]

    def answer() -> Any:
        return AIMessage("Take TK 1752 at 09:40 (EUR 814); it is the cheapest and a morning flight.",
                         response_metadata={"finish_reason": "stop", "model_name": "gpt-4o-mini-2024-07-18",
                                            "id": "chatcmpl-1"},
                         usage_metadata={"input_tokens": 412, "output_tokens": 31, "total_tokens": 443})

    return messages, answer


def configured_meter_provider(exemplars: bool | None = None) -> Any:
    """The MeterProvider `tracekit.configure()` builds (views, exemplar filter), with an in-memory reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tracekit.configuration import exemplar_filter, genai_metric_views

    return MeterProvider(metric_readers=[InMemoryMetricReader()], views=genai_metric_views(),
                         exemplar_filter=exemplar_filter(exemplars))


def configured_tracer_provider() -> tuple[Any, Callable[[], None]]:
    """The span pipeline `tracekit.configure()` builds for OTLP export with logs on (redaction first, the batch
    span processor, start records through a logger provider with redaction and batching) with exporters that drop
    what they are given; and a function that shuts it down."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tracekit.live import LiveSpanProcessor
    from tracekit.redaction.sdk import RedactingLogRecordProcessor, RedactingSpanProcessor

    policy = RedactionPolicy.default()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(RedactingLogRecordProcessor(policy))
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(DropLogs()))
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(policy))
    provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    provider.add_span_processor(LiveSpanProcessor(logger_provider))

    def shutdown() -> None:
        provider.shutdown()
        logger_provider.shutdown()

    return provider, shutdown


def model_call_scenario(provider: Any, meter_providers: list[Any]) -> tuple[Callable[[], Any],
                                                                            list[Callable[[], Any]], Callable[[], None]]:
    """`model.invoke(messages)` without `LangChainInstrumentor`, with it for each of `meter_providers` (None: the
    global one; a (tracer provider, meter provider) pair: that tracer provider instead of `provider`), and a
    function that leaves it off.

    The model answers at once with a fresh message, as a provider's model builds one from each response; the
    callback managers LangChain makes for the call are the same on both sides except for our handler."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.outputs import ChatGeneration, ChatResult

    from tracekit.instrumentors.langchain import LangChainInstrumentor

    messages, answer = conversation()

    class ScriptedChatModel(BaseChatModel):  # type: ignore[misc]
        model_name: str = "gpt-4o-mini"
        temperature: float = 0.2

        @property
        def _llm_type(self) -> str:
            return "scripted"

        @property
        def _identifying_params(self) -> dict[str, Any]:  # what LangChain reports as the invocation params
            return {"model_name": self.model_name, "temperature": self.temperature}

        def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
            return {"ls_provider": "openai", "ls_model_name": self.model_name, "ls_model_type": "chat",
                    "ls_temperature": self.temperature}

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            return ChatResult(generations=[ChatGeneration(message=answer())])

    model = ScriptedChatModel()
    instrumentor = LangChainInstrumentor()
    config = {"configurable": {"thread_id": "t-1"}}  # a conversation id, as an agent framework passes one

    current: list[Any] = []  # the meter provider the (singleton) instrumentor was instrumented with

    def off() -> None:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        current.clear()

    def plain() -> Any:
        if instrumentor.is_instrumented_by_opentelemetry:
            off()
        return model.invoke(messages, config=config)

    plain.model, plain.messages = model, messages  # type: ignore[attr-defined]  # for the floor's own handler

    def instrumented_with(way: Any) -> Callable[[], Any]:
        tracer_provider, meter_provider = way if isinstance(way, tuple) else (provider, way)

        def instrumented() -> Any:
            if current != [way]:  # switching once per timed batch, outside the calls that count
                off()
                instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
                current.append(way)
            return model.invoke(messages, config=config)

        return instrumented

    return plain, [instrumented_with(way) for way in meter_providers], off


def recorded_metrics(provider: Any, meter_provider: Any, reader: Any) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """The metric records one instrumented model call makes, read back from `reader` (of `meter_provider`):
    (instrument kind, name, value, attributes) for each data point, whichever convention names are in force."""
    plain, (instrumented,), off = model_call_scenario(provider, [meter_provider])
    try:
        instrumented()
    finally:
        off()
    records = []
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = "counter" if type(metric.data).__name__ == "Sum" else "histogram"
                for point in metric.data.data_points:
                    value = point.sum if kind == "histogram" else point.value
                    records.append((kind, metric.name, value, dict(point.attributes)))
    return records


def floor_scenario(provider: Any, content_on: bool, meter_provider: Any) -> Callable[[], Any]:
    """`model.invoke(messages)` with the least any OpenTelemetry handler of this call pays: langchain-core's
    dispatch to a handler, the span with the attributes the real handler produces (request attributes at start,
    the rest at the end, made current), and the same metric records as the real handler with attribute dicts built
    once. What the real handler adds on top of this is its own work: reading LangChain's objects."""
    from langchain_core.callbacks import BaseCallbackHandler
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from tracekit.configuration import genai_metric_views

    probe = TracerProvider()
    memory = InMemorySpanExporter()
    probe.add_span_processor(SimpleSpanProcessor(memory))
    reader = InMemoryMetricReader()
    records = recorded_metrics(probe, MeterProvider(metric_readers=[reader], views=genai_metric_views()), reader)
    finished = memory.get_finished_spans()[0]
    assert content_on == ("Lisbon" in str(finished.attributes.get("gen_ai.input.messages")))
    response_keys = ("gen_ai.response.", "gen_ai.usage.", "gen_ai.input.messages", "gen_ai.output.messages")
    at_start = {k: v for k, v in finished.attributes.items() if not k.startswith(response_keys)}
    at_end = {k: v for k, v in finished.attributes.items() if k.startswith(response_keys)}
    meter = meter_provider.get_meter("bench.floor")
    instruments = {}
    for kind, name, _value, _attributes in records:
        if name not in instruments:
            instruments[name] = (meter.create_counter(name) if kind == "counter" else meter.create_histogram(name))
    calls = [(getattr(instruments[name], "add" if kind == "counter" else "record"), value, attributes)
             for kind, name, value, attributes in records]
    tracer = provider.get_tracer("bench.floor")

    class FloorHandler(BaseCallbackHandler):  # type: ignore[misc]
        run_inline = True

        def __init__(self) -> None:
            super().__init__()
            self.runs: dict[Any, Any] = {}

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, **kwargs: Any) -> None:
            parent = otel_context.get_current()
            span = tracer.start_span(finished.name, context=parent, kind=SpanKind.CLIENT, attributes=at_start)
            self.runs[run_id] = (span, otel_context.attach(trace.set_span_in_context(span, parent)))

        def on_llm_end(self, response: Any, *, run_id: Any, **kwargs: Any) -> None:
            span, token = self.runs.pop(run_id)
            span.set_attributes(at_end)
            for record, value, attributes in calls:
                record(value, attributes)
            otel_context.detach(token)
            span.end()

    plain, _, _ = model_call_scenario(provider, [])
    model, messages = plain.model, plain.messages  # type: ignore[attr-defined]
    config = {"configurable": {"thread_id": "t-1"}, "callbacks": [FloorHandler()]}
    return lambda: model.invoke(messages, config=config)


def headline_sides(provider: Any) -> tuple[list[str], list[Callable[[], Any]], Callable[[], None]]:
    """The headline's sides for the content settings in force: LangChain alone, instrumented three ways, and the
    floor; and a function that leaves the instrumentation off."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    content_on = get_content_settings().enabled
    # "no MeterProvider": a no-op one, not the global one `--metrics` sets.
    pipeline, shutdown = configured_tracer_provider()
    ways = {"no MeterProvider": NoOpMeterProvider(), "as configured": configured_meter_provider(),
            "+ exemplars": configured_meter_provider(exemplars=True),
            PIPELINE: (pipeline, configured_meter_provider())}
    plain, instrumented, off = model_call_scenario(provider, list(ways.values()))
    floor_call = floor_scenario(provider, content_on, configured_meter_provider())

    def floor() -> Any:
        off()  # as `plain` does: the instrumentation one of the other sides left on would add our handler too
        return floor_call()

    def done() -> None:
        off()
        shutdown()

    return ["LangChain alone", *ways, FLOOR], [plain, *instrumented, floor], done


FLOOR = "floor, configured"
PIPELINE = "+ span pipeline"


def chat_scenario(tracer: Any, provider: Any, content_on: bool) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The handler's callbacks for one chat model call against a bare span with the attributes they produce."""
    from langchain_core.outputs import ChatGeneration, LLMResult
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from tracekit.instrumentors.langchain import TracekitCallbackHandler

    messages, answer = conversation()
    result = LLMResult(generations=[[ChatGeneration(message=answer())]])
    params = {"invocation_params": {"model_name": "gpt-4o-mini", "temperature": 0.2}}
    metadata = {"ls_provider": "openai", "thread_id": "t-1"}

    # The bare span carries the same final attributes the handler produces (computed once, outside the timing).
    probe = TracerProvider()
    memory = InMemorySpanExporter()
    probe.add_span_processor(SimpleSpanProcessor(memory))
    probe_handler = TracekitCallbackHandler(probe)
    run_id = uuid.uuid4()
    probe_handler.on_chat_model_start({}, [messages], run_id=run_id, metadata=metadata, **params)
    probe_handler.on_llm_end(result, run_id=run_id)
    final_attrs = dict(memory.get_finished_spans()[0].attributes)
    assert ("gen_ai.input.messages" in final_attrs) and (content_on == ("Lisbon" in final_attrs["gen_ai.input.messages"]))

    def bare() -> None:
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=final_attrs):
            pass

    handler = TracekitCallbackHandler(provider)
    run_ids = iter([uuid.uuid4() for _ in range(200_000)])  # made up front: uuid4() is not instrumentation cost

    def ours() -> None:
        run = next(run_ids)
        handler.on_chat_model_start({}, [messages], run_id=run, metadata=metadata, **params)
        handler.on_llm_end(result, run_id=run)

    return bare, ours


def live_scenario(policy: RedactionPolicy) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], None]]:
    """A span with three attributes on a provider without and with the LiveSpanProcessor (same other processors),
    and a function that shuts the live pipeline down."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from tracekit.live import LiveSpanProcessor
    from tracekit.redaction.sdk import RedactingLogRecordProcessor

    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(RedactingLogRecordProcessor(policy))
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(DropLogs()))
    bare_provider, live_provider = TracerProvider(), TracerProvider()
    bare_provider.add_span_processor(Drop())
    live_provider.add_span_processor(Drop())
    live_provider.add_span_processor(LiveSpanProcessor(logger_provider))
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
             "gen_ai.conversation.id": "conv-1"}
    bare_tracer, live_tracer = bare_provider.get_tracer("bench"), live_provider.get_tracer("bench")

    def bare() -> None:
        with bare_tracer.start_as_current_span("invoke_agent planner", attributes=attrs):
            pass

    def live() -> None:
        with live_tracer.start_as_current_span("invoke_agent planner", attributes=attrs):
            pass

    def stop() -> None:
        live_provider.shutdown()
        logger_provider.shutdown()

    return bare, live, stop


def redaction_throughput(policy: RedactionPolicy, text: str, seconds: float = 1.0) -> tuple[float, float]:
    """MB/s by wall clock and by this process's CPU time (the latter is what an idle core would do: on a shared
    machine the wall-clock figure mostly measures the neighbours)."""
    policy.redact_value("gen_ai.input.messages", text)  # the first call imports and compiles the screen
    start, cpu_start = time.perf_counter(), time.process_time()
    calls = 0
    while time.perf_counter() - start < seconds:
        policy.redact_value("gen_ai.input.messages", text)
        calls += 1
    megabytes = calls * len(text.encode()) / 1e6
    return megabytes / (time.perf_counter() - start), megabytes / max(time.process_time() - cpu_start, 1e-9)


def realistic_messages(size_bytes: int) -> str:
    rng = random.Random(7)
    sentences = [
        "Could you find me a flight to Kyoto in late March?",
        "The cheapest option is TK 1752 departing 09:40 for EUR 814 with one stop in Istanbul.",
        "I also need a hotel near the station for five nights, breakfast included if possible.",
        "Casa Azul has rooms at EUR 95 per night and free cancellation until 48 hours before arrival.",
        "Please summarize the itinerary and send it to my assistant.",
        "The weather forecast says 17 degrees with light wind and a small chance of rain.",
        "def plan(trip):\n    return [leg for leg in trip.legs if leg.confirmed]",
    ]
    messages = []
    total = 0
    while total < size_bytes:
        content = " ".join(rng.choice(sentences) for _ in range(8))
        if rng.random() < 0.05:
            content += " my key is sk-proj-" + "".join(rng.choice("abcdefXYZ0123456789") for _ in range(32))
        messages.append({"role": rng.choice(["user", "assistant"]), "parts": [{"type": "text", "content": content}]})
        total += len(content) + 50
    return json.dumps(messages)


def adversarial_text(size_bytes: int) -> str:
    rng = random.Random(1)
    words = ("flight 2024 at 10:30 price 129.99 EUR seat 14C gate B22 booking 8841 the to of and in on").split()
    return " ".join(rng.choice(words) for _ in range(size_bytes // 5))


def headline(provider: Any, n: int, rounds: int, worker: Worker | None = None) -> tuple[list[str], list[float],
                                                                                        list[float] | None]:
    """The headline's sides (`headline_sides`), fastest of `rounds` rounds of `n` calls each; with `worker`, its
    rounds of the same sides interleaved with ours. Returns the names and both sides' CPU seconds per call."""
    names, sides, off = headline_sides(provider)
    ours: list[list[float]] = [[] for _ in sides]
    theirs: list[list[float]] = [[] for _ in sides]
    try:
        for side in sides:
            timed(side, n // 10)
        for _ in range(rounds):
            if worker is not None:
                for times, value in zip(theirs, worker.round()):
                    times.append(value)
            for side, times in zip(sides, ours):
                times.append(timed(side, n))
    finally:
        off()
    return names, [min(times) for times in ours], [min(times) for times in theirs] if worker is not None else None


class Worker:
    """This script's headline in another interpreter (`--against`), one round at a time on request, so that its
    rounds interleave with ours: `PYTHON bench/overhead.py --worker` reads `round` lines and answers each with the
    CPU seconds per call of its sides, as JSON."""

    def __init__(self, python: str, quick: bool) -> None:
        command = [python, __file__, "--worker"] + (["--quick"] if quick else [])
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.process.stdout.readline().split()  # type: ignore[union-attr]
        if ready[:1] != ["READY"]:
            self.process.kill()
            raise SystemExit(f"the --against interpreter did not start the bench: {ready}")
        self.tracekit_path = ready[1]

    def round(self) -> list[float]:
        self.process.stdin.write("round\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=30)


def run_one_side(name: str, calls: int) -> None:
    """`--only`: `calls` calls of one content-off headline side, after a warm-up of the same side."""
    provider = TracerProvider()
    provider.add_span_processor(Drop())
    with using_tracer_provider(provider), using_content_settings(ContentSettings()):
        names, sides, off = headline_sides(provider)
        if name not in names:
            raise SystemExit(f"--only: no side named {name!r}; the sides are {', '.join(names)}")
        side = sides[names.index(name)]
        try:
            for _ in range(200):
                side()
            for _ in range(calls):
                side()
        finally:
            off()


def serve_rounds(n: int) -> None:
    """`--worker`: the content-off headline of this interpreter's tracekit, one round per `round` line on stdin."""
    provider = TracerProvider()
    provider.add_span_processor(Drop())
    with using_tracer_provider(provider), using_content_settings(ContentSettings()):
        names, sides, off = headline_sides(provider)
        try:
            for side in sides:
                timed(side, n // 10)
            print("READY", Path(tracekit.__file__).parent, flush=True)
            for line in sys.stdin:
                if line.strip() == "round":
                    print(json.dumps([timed(side, n) for side in sides]), flush=True)
        finally:
            off()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (for a smoke run)")
    parser.add_argument("--metrics", action="store_true",
                        help="with a MeterProvider (an in-memory reader), so the GenAI metrics are recorded too; "
                             "OTEL_SEMCONV_STABILITY_OPT_IN picks which names")
    parser.add_argument("--against", metavar="PYTHON",
                        help="also measure the content-off headline with another interpreter whose tracekit is a "
                             "baseline checkout (e.g. main's), its rounds interleaved with ours, and print the ratios")
    parser.add_argument("--headline", action="store_true",
                        help="only the LangChain chat model call figures (content off and on)")
    parser.add_argument("--only", metavar="SIDE",
                        help="run --calls calls of one content-off headline side ('LangChain alone', 'as configured', "
                             "...) and nothing else, for an instruction counter: under valgrind --tool=callgrind, "
                             "two runs' difference over their difference in --calls is the side's count per call")
    parser.add_argument("--calls", type=int, default=1_000, help="with --only: how many calls")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # the --against side
    args = parser.parse_args()
    n, rounds = (2_000, 3) if args.quick else (4_000, 15)
    if args.worker:
        serve_rounds(n // 8)
        return
    if args.only:
        run_one_side(args.only, args.calls)
        return
    worker = Worker(args.against, args.quick) if args.against else None
    from tracekit.tracing import latest_conventions

    print(f"metrics, where recorded: {'latest' if latest_conventions() else 'default'} convention names")
    if args.metrics:
        from opentelemetry import metrics

        metrics.set_meter_provider(configured_meter_provider())
        print("secondary figures: with the MeterProvider configure() sets up")

    provider = TracerProvider()
    provider.add_span_processor(Drop())
    tracer = provider.get_tracer("bench")
    policy = RedactionPolicy.default()
    print(f"tracekit instrumentation cost (fastest of {rounds} rounds, CPU time, Python {sys.version.split()[0]})")
    added: dict[str, float] = {}
    with using_tracer_provider(provider):
        for label, settings in (("content off", ContentSettings()),
                                ("content on + redaction", ContentSettings(ContentMode.SPAN_ONLY, policy))):
            with using_content_settings(settings):
                print(f"{label}:")
                # --against: the baseline interpreter's rounds interleaved with ours (the target's mode only)
                compared = worker if label == "content off" else None
                names, ours, theirs = headline(provider, n // 8, rounds, compared)
                b = ours[0]
                print(f"  LangChain chat model call: LangChain alone {b * 1e6:7.1f} us; instrumented:")
                for how, o in zip(names[1:], ours[1:]):
                    added[f"{label}, {how}"] = o - b
                    print(f"    {how:<18} {o * 1e6:7.1f} us   added {(o - b) * 1e6:+7.1f} us per call")
                print(f"    tracekit's own work (as configured minus the floor): "
                      f"{(added[f'{label}, as configured'] - added[f'{label}, {FLOOR}']) * 1e6:+.1f} us per call")
                if theirs is not None:
                    print(f"  against {args.against} (tracekit from {worker.tracekit_path}), its rounds interleaved:")
                    print(f"    LangChain alone    this run {b * 1e6:7.1f} us   baseline {theirs[0] * 1e6:7.1f} us")
                    for how, o, t in zip(names[1:], ours[1:], theirs[1:]):
                        ratio = (o - b) / (t - theirs[0])
                        added[f"baseline {how}"] = t - theirs[0]
                        print(f"    {how:<18} added {(o - b) * 1e6:+7.1f} us   baseline {(t - theirs[0]) * 1e6:+7.1f} us"
                              f"   ratio {ratio:.2f}x")
                if args.headline:
                    continue
                print("  against a bare span with the same attributes:")
                for name, (bare, ours) in (("tool (decorator)", tool_scenario(tracer)),
                                           ("agent (context manager)", agent_scenario(tracer)),
                                           ("chat (LangChain handler)",
                                            chat_scenario(tracer, provider, settings.enabled))):
                    compare(name, bare, ours, n if not name.startswith("chat") else n // 4, rounds)

    if worker is not None:
        worker.close()
    if not args.headline:
        secondary(n, rounds, policy, args.quick)
    summary(added, worker is not None)


def secondary(n: int, rounds: int, policy: RedactionPolicy, quick: bool) -> None:
    """Start records and redaction throughput."""
    print("agents in flight (a start record per span start):")
    for label, live_policy in (("default redaction", policy), ("redaction disabled", RedactionPolicy.disabled())):
        bare, live, stop = live_scenario(live_policy)
        try:
            b, o = compare(f"start record, {label}", bare, live, n, rounds, labels=("bare span", "with record"))
        finally:
            stop()
        print(f"  added per span start, {label}: {(o - b) * 1e6:+.1f} us")

    print("redaction throughput (default policy):")
    for label, text in (("realistic message JSON, 1 MB", realistic_messages(1_000_000)),
                        ("realistic message JSON, 4 KB", realistic_messages(4_000)),
                        # accents, a euro sign: non-ASCII text also gets checked for digits beyond 0-9
                        ("the same with non-ASCII, 1 MB",
                         realistic_messages(1_000_000).replace("Kyoto", "Kyōto").replace("EUR", "€")),
                        ("digit-dense adversarial text, 1 MB", adversarial_text(1_000_000))):
        wall, cpu = redaction_throughput(policy, text, 0.5 if quick else 2.0)
        print(f"  {label:<36} {wall:7.1f} MB/s wall clock   {cpu:7.1f} MB/s per CPU second")


def summary(added: dict[str, float], against: bool) -> None:
    """The line the target is read from, and the load."""
    print(f"added to a LangChain chat model call, content off (target <= +150 us): "
          f"{added['content off, as configured'] * 1e6:+.1f} us as tracekit.configure() sets it up (metrics on), "
          f"{added['content off, no MeterProvider'] * 1e6:+.1f} us without a MeterProvider, "
          f"{added['content off, + exemplars'] * 1e6:+.1f} us configured with exemplars=True; "
          f"{added[f'content off, {PIPELINE}'] * 1e6:+.1f} us with configure()'s span pipeline too; "
          f"the floor (dispatch, span, metric records) {added[f'content off, {FLOOR}'] * 1e6:+.1f} us"
          + (f"; baseline as configured {added['baseline as configured'] * 1e6:+.1f} us" if against else ""))
    if hasattr(os, "getloadavg"):
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
