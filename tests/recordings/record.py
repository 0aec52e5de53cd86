"""Record how third-party GenAI instrumentations shape their spans, from the real packages.

    python tests/recordings/record.py                 # every library, each in its own virtual environment
    python tests/recordings/record.py openinference   # one library

For each library this creates a virtual environment (under $TMPDIR, outside the repository), installs the
packages pinned in LIBRARIES from PyPI, and runs this same file inside it with `--run NAME`. That run serves a
scripted model on 127.0.0.1 (tests/instrumentors/fake_openai.py), drives one conversation with a tool call through
the library's client with its instrumentation and content capture on, and writes what the OpenTelemetry SDK
exported, spans and log records, with the OpenTelemetry OTLP/JSON file exporter to tests/recordings/NAME.jsonl
(one ExportTraceServiceRequest or ExportLogsServiceRequest per line). The tests replay those files
(tests/conversation/scenarios.py); nothing else is edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SDK = ["opentelemetry-sdk==1.45.2", "opentelemetry-exporter-otlp-json-file==0.66b1"]
# Releases that still use the Events API (removed from the SDK after 1.36) record with the SDK of their time, its
# in-memory exporters and its OTLP protobuf encoder, written out as OTLP/JSON (see `otlp_json_lines`).
SDK_1_36 = ["opentelemetry-sdk==1.36.0", "opentelemetry-exporter-otlp-proto-common==1.36.0"]
OPENAI_CLIENT = "openai==3.63.0"
OPENAI_CLIENT_1 = "openai==1.109.1"  # for the older releases, which patch openai 1.x
# openai-v2 2.4b0 imports `httpx`, which openai 3 no longer brings (it uses httpx2), and
# `opentelemetry.util.genai.instruments`, which util-genai renamed after 1.1b0.
OPENAI_V2 = [*SDK, "opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==1.1b0",
             "httpx==0.29.0", OPENAI_CLIENT]
LATEST_GENAI = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}

# capture name -> (packages, environment of the run); the function of the same name drives the conversation.
LIBRARIES: dict[str, tuple[list[str], dict[str, str]]] = {
    "openinference": ([*SDK, "openinference-instrumentation-openai==0.1.66", "openinference-instrumentation==0.1.72",
                       OPENAI_CLIENT], {}),
    # OpenLLMetry: the current release writes gen_ai.input/output.messages; releases before 0.48 wrote the
    # indexed gen_ai.prompt.N.* / gen_ai.completion.N.* attributes that older deployments still send.
    "openllmetry": ([*SDK, "opentelemetry-instrumentation-openai==0.62.4", OPENAI_CLIENT],
                    {"TRACELOOP_TRACE_CONTENT": "true"}),
    "openllmetry_indexed": ([*SDK_1_36, "opentelemetry-instrumentation-openai==0.47.5", OPENAI_CLIENT_1],
                            {"TRACELOOP_TRACE_CONTENT": "true"}),
    "azure_ai_inference": ([*SDK, "azure-ai-inference==1.0.0b9", "azure-core-tracing-opentelemetry==1.0.0b13"],
                           {"AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED": "true"}),
    # openai-v2: the current release (through opentelemetry-util-genai) with content on the span, and with content
    # as one gen_ai.client.inference.operation.details event; 2.1b0 wrote content as one log record per message.
    "openai_v2_spans": (OPENAI_V2, {**LATEST_GENAI, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}),
    "openai_v2_events": (OPENAI_V2, {**LATEST_GENAI,
                                     "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"}),
    "openai_v2_legacy": ([*SDK_1_36, "opentelemetry-instrumentation-openai-v2==2.1b0", OPENAI_CLIENT_1],
                         {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}),
}

# The scripted conversation: one question, one tool call, one answer.
MODEL = "gpt-4o-mini"
SYSTEM = "Use the tools."
QUESTION = "Who wrote Dune?"
TOOL_NAME = "lookup"
TOOL_ARGUMENTS = {"q": "Dune author"}
TOOL_RESULT = "Frank Herbert"
ANSWER = "Dune was written by Frank Herbert."
CALL_ID = "call_dune_1"
TOOL_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def _completion(number: int, message: dict[str, Any], finish: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {"id": f"chatcmpl-recorded-{number}", "object": "chat.completion", "created": 1767261600 + number,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_recorded",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


MODEL_REPLIES = [
    _completion(1, {"content": None, "tool_calls": [{"id": CALL_ID, "type": "function", "function": {
        "name": TOOL_NAME, "arguments": json.dumps(TOOL_ARGUMENTS)}}]}, "tool_calls", (40, 8)),
    _completion(2, {"content": ANSWER}, "stop", (60, 9)),
]


def run_openai_client(base_url: str,
                      tool: Callable[[dict[str, Any]], str] | None = None) -> None:
    """The conversation through the real `openai` client (used by every OpenAI instrumentation)."""
    import openai

    client = openai.OpenAI(api_key="test-key", base_url=base_url, max_retries=0)
    tools = [{"type": "function", "function": {"name": TOOL_NAME, "description": "Look a fact up",
                                               "parameters": TOOL_SCHEMA}}]
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    result = (tool or (lambda arguments: TOOL_RESULT))(json.loads(call.function.arguments))
    messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
                 {"role": "tool", "tool_call_id": call.id, "content": result}]
    client.chat.completions.create(model=MODEL, messages=messages, tools=tools)


def openinference(base_url: str, tracer_provider: Any, logger_provider: Any) -> None:
    """OpenInference: the OpenAI instrumentation, with an agent and a tool span made by OpenInference's own tracer
    (as an application using it does) and the session id from `using_session`."""
    from openinference.instrumentation import OITracer, TraceConfig, using_session
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    tracer = OITracer(tracer_provider.get_tracer("recorded-app"), config=TraceConfig())

    @tracer.tool(name=TOOL_NAME)
    def lookup(q: str) -> str:
        return TOOL_RESULT

    with using_session("conv-openinference"):
        with tracer.start_as_current_span("research_agent", openinference_span_kind="agent") as agent:
            agent.set_input(QUESTION)
            run_openai_client(base_url, tool=lambda arguments: lookup(**arguments))
            agent.set_output(ANSWER)


def openllmetry(base_url: str, tracer_provider: Any, logger_provider: Any,
                conversation: str = "conv-openllmetry") -> None:
    """OpenLLMetry (Traceloop's opentelemetry-instrumentation-openai); the app's own root span carries the
    conversation id, since the instrumentation alone sets none."""
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    with tracer_provider.get_tracer("recorded-app").start_as_current_span(
            "answer_question", attributes={"gen_ai.conversation.id": conversation}):
        run_openai_client(base_url)


def openllmetry_indexed(base_url: str, tracer_provider: Any, logger_provider: Any) -> None:
    openllmetry(base_url, tracer_provider, logger_provider, "conv-openllmetry-indexed")


def openai_v2(base_url: str, tracer_provider: Any, logger_provider: Any, conversation: str) -> None:
    """OpenTelemetry's opentelemetry-instrumentation-openai-v2; where content goes depends on the release and the
    environment (see LIBRARIES). The app's root span carries the conversation id."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    with tracer_provider.get_tracer("recorded-app").start_as_current_span(
            "answer_question", attributes={"gen_ai.conversation.id": conversation}):
        run_openai_client(base_url)


def openai_v2_spans(base_url: str, tracer_provider: Any, logger_provider: Any) -> None:
    openai_v2(base_url, tracer_provider, logger_provider, "conv-openai-v2-spans")


def openai_v2_events(base_url: str, tracer_provider: Any, logger_provider: Any) -> None:
    openai_v2(base_url, tracer_provider, logger_provider, "conv-openai-v2-events")


def openai_v2_legacy(base_url: str, tracer_provider: Any, logger_provider: Any) -> None:
    openai_v2(base_url, tracer_provider, logger_provider, "conv-openai-v2-legacy")


def azure_ai_inference(base_url: str, tracer_provider: Any, logger_provider: Any) -> None:
    """azure-ai-inference's ChatCompletionsClient with its own tracing (AIInferenceInstrumentor): content as span
    events. Azure Core's tracing uses the global tracer provider."""
    from azure.ai.inference import ChatCompletionsClient
    from azure.ai.inference.models import (AssistantMessage, ChatCompletionsToolDefinition, FunctionDefinition,
                                           SystemMessage, ToolMessage, UserMessage)
    from azure.ai.inference.tracing import AIInferenceInstrumentor
    from azure.core.credentials import AzureKeyCredential
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry"
    AIInferenceInstrumentor().instrument(enable_content_recording=True)
    client = ChatCompletionsClient(endpoint=base_url, credential=AzureKeyCredential("test-key"))
    tools = [ChatCompletionsToolDefinition(function=FunctionDefinition(
        name=TOOL_NAME, description="Look a fact up", parameters=TOOL_SCHEMA))]
    messages: list[Any] = [SystemMessage(SYSTEM), UserMessage(QUESTION)]
    with tracer_provider.get_tracer("recorded-app").start_as_current_span(
            "answer_question", attributes={"gen_ai.conversation.id": "conv-azure-ai-inference"}):
        first = client.complete(model=MODEL, messages=messages, tools=tools)
        call = first.choices[0].message.tool_calls[0]
        messages += [AssistantMessage(tool_calls=[call]), ToolMessage(TOOL_RESULT, tool_call_id=call.id)]
        client.complete(model=MODEL, messages=messages, tools=tools)


def _add_exporters(tracer_provider: Any, logger_provider: Any, stream: Any) -> Callable[[], None]:
    """Export spans and log records to `stream` as OTLP/JSON lines; returns what to call once everything ended.

    With the OTLP/JSON file exporter where the SDK has it; otherwise the SDK's in-memory exporters, encoded at the
    end by the SDK's OTLP protobuf encoder and written in OTLP/JSON (ids in hex, enums as numbers).
    """
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    try:
        from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
        from opentelemetry.exporter.otlp.json.file.trace_exporter import FileSpanExporter
    except ImportError:
        pass
    else:
        tracer_provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(stream=stream)))
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(FileLogExporter(stream=stream)))
        return lambda: None

    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk._logs.export import InMemoryLogExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans, logs = InMemorySpanExporter(), InMemoryLogExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))

    def finish() -> None:
        for finished, encode in ((spans.get_finished_spans(), encode_spans), (logs.get_finished_logs(), encode_logs)):
            if finished:
                stream.write(json.dumps(otlp_json(encode(finished)), separators=(",", ":")) + "\n")
    return finish


def otlp_json(request: Any) -> dict[str, Any]:
    """A protobuf OTLP request in OTLP/JSON: protobuf's JSON mapping, but trace and span ids in hex."""
    import base64

    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(request, use_integers_for_enums=True)

    def hex_ids(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hex_ids(value)
        elif isinstance(node, list):
            for item in node:
                hex_ids(item)
    hex_ids(data)
    return data


def run(name: str, out: Path) -> None:
    """Inside the library's environment: record the conversation to `out`."""
    from opentelemetry import _logs, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    sys.path.insert(0, str(REPO))
    from tests.conversation.sequential_ids import SequentialIds
    from tests.instrumentors.fake_openai import FakeOpenAI

    out.unlink(missing_ok=True)
    resource = Resource.create({"service.name": f"recorded-{name.replace('_', '-')}"})
    tracer_provider = TracerProvider(resource=resource, id_generator=SequentialIds(list(LIBRARIES).index(name) + 11))
    logger_provider = LoggerProvider(resource=resource)
    trace.set_tracer_provider(tracer_provider)
    _logs.set_logger_provider(logger_provider)
    try:
        from opentelemetry._events import set_event_logger_provider
        from opentelemetry.sdk._events import EventLoggerProvider

        set_event_logger_provider(EventLoggerProvider(logger_provider))  # the Events API, where the SDK has it
    except ImportError:
        pass
    with open(out, "a", encoding="utf-8") as stream:
        finish = _add_exporters(tracer_provider, logger_provider, stream)
        with FakeOpenAI() as model:
            for reply in MODEL_REPLIES:
                model.enqueue(reply)
            base_url = model.base_url if name != "azure_ai_inference" else model.base_url.removesuffix("/v1")
            globals()[name](base_url, tracer_provider, logger_provider)
            assert not model.queue, "the conversation did not make both model calls"
        tracer_provider.force_flush()
        logger_provider.force_flush()
        finish()
    print(f"{name}: {sum(1 for _ in out.open())} OTLP/JSON requests -> {out.relative_to(REPO)}")


def install_and_run(name: str, root: Path) -> None:
    packages, environment = LIBRARIES[name]
    env_dir = root / name
    python = env_dir / "bin" / "python"
    if not python.exists():
        venv.create(env_dir, with_pip=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    subprocess.run([str(python), str(Path(__file__).resolve()), "--run", name],
                   env={**os.environ, **environment, "PYTHONPATH": str(REPO)}, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("libraries", nargs="*", metavar="LIBRARY", help=f"default: all of {', '.join(LIBRARIES)}")
    parser.add_argument("--run", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--venvs", type=Path, default=Path(tempfile.gettempdir()) / "tracekit-recordings",
                        help="where the per-library environments are made (default: %(default)s)")
    args = parser.parse_args()
    if args.run:
        run(args.run, HERE / f"{args.run}.jsonl")
        return
    unknown = set(args.libraries) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries {sorted(unknown)}; known: {', '.join(LIBRARIES)}")
    for name in args.libraries or LIBRARIES:
        install_and_run(name, args.venvs)


if __name__ == "__main__":
    main()
