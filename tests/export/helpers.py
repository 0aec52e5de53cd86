"""Building real stores for the export tests: real SDK spans, encoded by the SDK's OTLP encoder and stored by the
collector's offline writer (its decoders and store writer, as `tracekit import` uses them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Sequence

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tracekit.collector.offline import write_requests

RESOURCE = Resource({"service.name": "travel-agent", "service.namespace": "demo", "service.instance.id": "laptop-1",
                     "service.version": "1.2.3"})


def agent_run(tracer_provider: TracerProvider, logger_provider: LoggerProvider | None = None, *,
              agent: str = "planner", conversation: str = "conv-1", big: str | None = None,
              start_ns: int | None = None) -> None:
    """One agent turn: invoke_agent -> chat (with usage) + execute_tool (with an exception event) + a link."""
    tracer = tracer_provider.get_tracer("tracekit.test", "0.1")
    base = start_ns or time.time_ns()
    with tracer.start_as_current_span(
            f"invoke_agent {agent}", kind=SpanKind.INTERNAL, start_time=base,
            end_on_exit=False,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
                        "gen_ai.provider.name": "openai", "gen_ai.conversation.id": conversation}) as root:
        with tracer.start_as_current_span(
                "chat gpt-4o", kind=SpanKind.CLIENT, start_time=base + 1_000_000, end_on_exit=False,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                            "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 120,
                            "gen_ai.usage.output_tokens": 42, "gen_ai.response.finish_reasons": ["stop"],
                            "gen_ai.conversation.id": conversation, "gen_ai.response.id": "resp_1",
                            **({"gen_ai.input.messages": big} if big else {})}) as chat:
            chat.add_event("gen_ai.content.note", {"note": "hello"}, timestamp=base + 2_000_000)
            chat.end(end_time=base + 5_123_456)
        with tracer.start_as_current_span(
                "execute_tool get_weather", kind=SpanKind.INTERNAL, start_time=base + 6_000_000, end_on_exit=False,
                links=[Link(root.get_span_context(), {"link.kind": "caller"})],
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                            "gen_ai.conversation.id": conversation}) as tool:
            tool.record_exception(ValueError("no such city"), timestamp=base + 7_000_000)
            tool.set_status(Status(StatusCode.ERROR, "no such city"))
            tool.end(end_time=base + 8_000_000)
        if logger_provider is not None:
            logger_provider.get_logger("tracekit.evaluation").emit(
                timestamp=base + 9_000_000, severity_number=SeverityNumber.INFO, body="evaluation",
                event_name="gen_ai.evaluation.result",
                attributes={"microsoft.custom_event.name": "gen_ai.evaluation.result",
                            "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 4.0,
                            "gen_ai.response.id": "resp_1"})
        root.end(end_time=base + 10_000_000)


def make_providers(resource: Resource = RESOURCE):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    return tracer_provider, logger_provider, spans, logs


def write_store(db: Path, spans: Sequence[ReadableSpan], logs: Iterable[ReadableLogRecord] = (),
                chunk: int = 1000) -> None:
    """Store SDK spans and log records, one commit group (ingest_seq) per `chunk` spans, then one for the logs."""
    for start in range(0, len(spans), chunk):
        write_requests([encode_spans(spans[start:start + chunk])], db)
    logs = list(logs)
    if logs:
        write_requests([encode_logs(logs)], db)
