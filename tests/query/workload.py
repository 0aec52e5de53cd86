"""A small, realistic multi-agent workload made with the real OpenTelemetry SDK.

Deterministic (seeded) so tests can compute expected answers from the spans themselves, independently of the
query layer: every test reads the ReadableSpan objects this returns, never the views it is checking.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from tracekit import semconv

BASE_NS = 1_763_000_000_000_000_000  # a fixed instant; tests pass explicit times so results are reproducible
AGENTS = ("planner", "researcher", "writer")
MODELS = ("gpt-4o", "gpt-4o-mini")
TOOLS = ("search", "calculator", "fetch_page")
RESOURCE = Resource({"service.name": "agent-app", "service.namespace": "demo", "service.instance.id": "inst-1",
                     "service.version": "1.2.3"})


@dataclass
class Workload:
    spans: list[ReadableSpan] = field(default_factory=list)
    logs: list = field(default_factory=list)


def make_workload(runs: int = 12, seed: int = 7, *, base_ns: int = BASE_NS) -> Workload:
    """`runs` agent runs: invoke_agent -> chat calls and execute_tool calls, some failing, plus evaluations."""
    rng = random.Random(seed)
    span_exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = provider.get_tracer("tracekit.tests")
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logger_provider.get_logger("tracekit.evaluation")

    clock = base_ns
    for run in range(runs):
        agent = AGENTS[run % len(AGENTS)]
        start = clock
        root = tracer.start_span(
            f"invoke_agent {agent}", kind=SpanKind.INTERNAL, start_time=start,
            attributes={semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: agent,
                        semconv.GEN_AI_AGENT_ID: f"asst_{agent}", semconv.GEN_AI_SYSTEM: "openai",
                        semconv.GEN_AI_PROVIDER_NAME: "openai",
                        semconv.GEN_AI_CONVERSATION_ID: f"conv-{run // 2}", "session.id": f"sess-{run // 2}"})
        ctx = trace.set_span_in_context(root)
        t = start + 1_000_000
        failed = False
        for step in range(rng.randint(1, 3)):
            model = MODELS[rng.randrange(2)]
            duration = rng.randint(50, 900) * 1_000_000 + rng.randint(0, 999_999)
            chat = tracer.start_span(
                f"chat {model}", context=ctx, kind=SpanKind.CLIENT, start_time=t,
                attributes={semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_SYSTEM: "openai",
                            semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: model,
                            semconv.GEN_AI_RESPONSE_MODEL: model + "-2024", semconv.GEN_AI_RESPONSE_ID: f"resp-{run}-{step}",
                            semconv.GEN_AI_USAGE_INPUT_TOKENS: rng.randint(10, 2000),
                            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: rng.randint(1, 500),
                            semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
                            semconv.GEN_AI_REQUEST_TEMPERATURE: 0.7, semconv.GEN_AI_REQUEST_STREAM: False,
                            "server.address": "api.openai.com", "server.port": 443})
            chat.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "hi"}, timestamp=t + 1000)
            t += duration
            chat.end(end_time=t)
            tool = TOOLS[rng.randrange(3)]
            tduration = rng.randint(1, 300) * 1_000_000 + rng.randint(0, 999_999)
            tspan = tracer.start_span(
                f"execute_tool {tool}", context=ctx, kind=SpanKind.INTERNAL, start_time=t,
                attributes={semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: tool,
                            semconv.GEN_AI_TOOL_CALL_ID: f"call-{run}-{step}", semconv.GEN_AI_TOOL_TYPE: "function"})
            if rng.random() < 0.3:
                failed = True
                tspan.record_exception(TimeoutError(f"{tool} timed out"), timestamp=t + 500,
                                       attributes={"exception.stacktrace": "Traceback: ..."})
                tspan.set_attribute(semconv.ERROR_TYPE, "TimeoutError")
                tspan.set_status(Status(StatusCode.ERROR, "timed out"))
            t += tduration
            tspan.end(end_time=t)
            t += 1_000_000
        if failed and rng.random() < 0.5:
            root.set_status(Status(StatusCode.ERROR))
            root.set_attribute(semconv.ERROR_TYPE, "ToolError")
        root.end(end_time=t)
        trace_id = root.get_span_context().trace_id
        span_id = root.get_span_context().span_id
        for evaluator in ("relevance", "coherence"):
            eval_ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(trace_id, span_id, False,
                                                                              TraceFlags(1))))
            logger.emit(
                timestamp=t + 1000, context=eval_ctx, body=None,
                attributes={semconv.MICROSOFT_CUSTOM_EVENT_NAME: semconv.EVENT_EVALUATION_RESULT,
                            semconv.GEN_AI_EVALUATION_NAME: evaluator,
                            semconv.GEN_AI_EVALUATION_SCORE_VALUE: round(rng.uniform(1, 5), 2),
                            semconv.GEN_AI_EVALUATION_SCORE_LABEL: "pass",
                            semconv.GEN_AI_RESPONSE_ID: f"resp-{run}-0"})
        clock = t + 60_000_000_000
    provider.shutdown()
    logger_provider.shutdown()
    return Workload(spans=list(span_exporter.get_finished_spans()),
                    logs=list(log_exporter.get_finished_logs()))


def operation(span: ReadableSpan) -> str | None:
    return span.attributes.get(semconv.GEN_AI_OPERATION_NAME)


def in_memory_tracer() -> tuple[trace.Tracer, Callable[[], list[ReadableSpan]]]:
    """A tracer of the workload's resource, and the call that ends its provider and returns the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def finished() -> list[ReadableSpan]:
        provider.shutdown()
        return list(exporter.get_finished_spans())
    return provider.get_tracer("tracekit.tests"), finished


def agent_request_workload(start_ns: int) -> list[ReadableSpan]:
    """An agent served over HTTP: a SERVER span naming the agent "x", with a model call and a tool call under it."""
    tracer, finished = in_memory_tracer()
    request = tracer.start_span("POST /agents/x/run", kind=SpanKind.SERVER, start_time=start_ns,
                                attributes={"http.request.method": "POST", "http.route": "/agents/x/run",
                                            "http.response.status_code": 200, semconv.GEN_AI_AGENT_NAME: "x"})
    context = trace.set_span_in_context(request)
    for offset, (name, kind, attributes) in enumerate([
            ("chat gpt-4o", SpanKind.CLIENT, {semconv.GEN_AI_OPERATION_NAME: "chat",
                                              semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}),
            ("execute_tool search", SpanKind.INTERNAL, {semconv.GEN_AI_OPERATION_NAME: "execute_tool",
                                                        semconv.GEN_AI_TOOL_NAME: "search"})]):
        child = tracer.start_span(name, context=context, kind=kind, attributes=attributes,
                                  start_time=start_ns + (offset + 1) * 1_000_000)
        child.end(end_time=start_ns + (offset + 2) * 1_000_000)
    request.end(end_time=start_ns + 5_000_000)
    return finished()


def server_span_workload() -> list[ReadableSpan]:
    """A SERVER span (an HTTP request into the agent app) with a CLIENT HTTP child: the non-GenAI mappings."""
    tracer, finished = in_memory_tracer()
    server = tracer.start_span("POST /chat", kind=SpanKind.SERVER, start_time=BASE_NS,
                               attributes={"http.request.method": "POST", "http.route": "/chat",
                                           "url.full": "http://localhost:8000/chat?x=1",
                                           "http.response.status_code": 404, "app.tenant": "t1"})
    ctx = trace.set_span_in_context(server)
    client = tracer.start_span("GET", context=ctx, kind=SpanKind.CLIENT, start_time=BASE_NS + 1_000_000,
                               attributes={"http.request.method": "GET", "url.full": "https://example.com:8443/a/b?q=1",
                                           "server.address": "example.com", "server.port": 8443,
                                           "http.response.status_code": 200, "tags": ["a", "it's"]})
    client.end(end_time=BASE_NS + 5_500_000)
    server.end(end_time=BASE_NS + 9_499_999)
    return finished()


# Attribute sets that take the exporter's other branches (HTTP, databases, messaging, RPC, peers, Azure SDK, users).
SPECIAL_ATTRIBUTES: list[dict] = [
    {"http.request.method": "GET", "url.full": "https://api.example.com/v1/items?q=1", "http.response.status_code": 503},
    {"http.method": "POST", "http.url": "http://svc:8080/a", "http.route": "/a", "http.status_code": 201},
    {"http.request.method": "GET", "url.full": "https://x.test", "server.address": "x.test", "server.port": 443},
    {"http.request.method": "GET", "gen_ai.system": "openai", "server.address": "api.openai.com", "server.port": 443},
    {"db.system.name": "postgresql", "db.query.text": "select 1", "server.address": "db", "server.port": 5432},
    {"db.system": "mssql", "db.statement": "select 2"},
    {"db.system": "cassandra", "db.operation": "get"},
    {"messaging.system": "servicebus", "messaging.destination.name": "q"},
    {"rpc.system": "grpc", "net.peer.name": "rpc.local", "net.peer.port": 50051},
    {"peer.service": "search", "gen_ai.system": "openai"},
    {"az.namespace": "Microsoft.CognitiveServices", "gen_ai.system": "az.ai.inference"},
    {"az.namespace": "Microsoft.ServiceBus"},
    {"gen_ai.system": "", "gen_ai.operation.name": "chat"},
    {"gen_ai.system": 7},
    {"enduser.id": "alice", "enduser.pseudo.id": "p-1", "session.id": "sess-9"},
    {"session.id": 7, "enduser.id": 42},
    {"http.request.method": "GET", "url.full": "https://Api.Example.com:443/p", "url.scheme": "https"},
    {"http.request.method": "GET", "url.full": "http://a.test:8080/p?q", "url.scheme": "http", "server.port": 80},
    {"http.request.method": "GET", "url.full": "http://a.test/p", "url.scheme": "http", "server.address": "a.test",
     "server.port": 80, "http.response.status_code": "404"},
    {"http.method": "GET", "http.scheme": "https", "http.host": "h.test:443", "http.target": "/t?x=1",
     "http.status_code": 200.0},
    {"http.method": "PUT", "http.scheme": "http", "http.target": "/t", "net.peer.ip": "10.0.0.2",
     "net.peer.port": 8081, "http.server_name": "srv", "net.host.port": 8000},
    {"http.request.method": "", "http.method": "GET", "url.scheme": "https", "url.path": "/p", "url.query": "a=1",
     "server.address": "s.test", "server.port": 8443, "http.route": ""},
    {"http.request.method": "POST", "url.scheme": "http", "url.path": "/only", "net.host.name": "nh",
     "http.response.status_code": True},
    {"db.system.name": "mysql", "db.namespace": "shop", "server.address": "db.local", "server.port": 3306},
    {"db.system": "redis", "db.name": "0", "net.peer.name": "cache", "net.peer.port": 6379},
    {"db.system.name": "", "db.system": "sqlite", "db.operation.name": "SELECT"},
    {"messaging.system": "kafka", "messaging.destination": "orders", "client.address": "10.1.1.1"},
    {"messaging.system": "rabbitmq", "messaging.destination": "q2", "net.peer.ip": "10.2.2.2"},
    {"az.namespace": "Microsoft.EventHub", "server.address": "ns.servicebus.windows.net",
     "messaging.destination.name": "hub", "peer.service": "eh"},
    {"http.request.method": "GET", "gen_ai.system": "openai", "url.full": "https://api.openai.com/v1/chat"},
    {"gen_ai.system": 0, "peer.service": ""},
    {"gen_ai.system": False, "rpc.system": "grpc"},
]


def special_mapping_workload() -> list[ReadableSpan]:
    """Every SPECIAL_ATTRIBUTES set on a span of every kind: the exporter's non-GenAI mappings."""
    tracer, finished = in_memory_tracer()
    start = BASE_NS + 2_000_000_000
    for index, attributes in enumerate(SPECIAL_ATTRIBUTES):
        for kind in SpanKind:
            span = tracer.start_span(f"op {index}", kind=kind, start_time=start, attributes=attributes)
            span.end(end_time=start + 3_000_000 + index)
            start += 10_000_000
    return finished()


def token_edge_workload() -> list[ReadableSpan]:
    """Chat spans whose token attributes are not plain ints: the cases the typed-column shortcut must not misread."""
    tracer, finished = in_memory_tracer()
    variants = [
        {semconv.GEN_AI_USAGE_PROMPT_TOKENS: 40, semconv.GEN_AI_USAGE_COMPLETION_TOKENS: 4},  # deprecated keys only
        {semconv.GEN_AI_USAGE_INPUT_TOKENS: 12.0, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3.5},  # floats
        {semconv.GEN_AI_USAGE_INPUT_TOKENS: "77", semconv.GEN_AI_USAGE_OUTPUT_TOKENS: True},  # string, bool
        {semconv.GEN_AI_USAGE_INPUT_TOKENS: 3_000_000_000, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: -5},  # > int32
    ]
    for index, tokens in enumerate(variants):
        span = tracer.start_span("chat edge", kind=SpanKind.CLIENT, start_time=BASE_NS + index * 1000,
                                 attributes={semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_SYSTEM: "openai",
                                             semconv.GEN_AI_REQUEST_MODEL: "edge-model", **tokens})
        span.end(end_time=BASE_NS + index * 1000 + 5_000_000)
    return finished()
