"""Verdicts as `gen_ai.evaluation.result` events (OpenTelemetry GenAI conventions), tied to the evaluated span.

Each is an OTLP log record carrying the evaluated span's trace and span id, the response id, and
`microsoft.custom_event.name`, so the store, the replay, KQL (`customEvents`) and Application Insights all see it
where they see the evaluations an application records itself (tracekit.record_evaluation).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracekit import semconv
from tracekit.evaluators.builtin import Verdict
from tracekit.evaluators.items import Item

SCOPE = "tracekit.evaluators"


def evaluation_request(results: list[tuple[Item, str, Verdict]]) -> ExportLogsServiceRequest:
    """One OTLP logs request holding a `gen_ai.evaluation.result` record per (item, evaluator name, verdict)."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="tracekit")))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = SCOPE
    now = time.time_ns()
    for item, name, verdict in results:
        record = scope_logs.log_records.add()
        record.time_unix_nano = record.observed_time_unix_nano = now
        record.event_name = semconv.EVENT_EVALUATION_RESULT
        record.trace_id = bytes.fromhex(item.trace_id)
        record.span_id = bytes.fromhex(item.span_id)
        attributes: dict[str, Any] = {
            semconv.MICROSOFT_CUSTOM_EVENT_NAME: semconv.EVENT_EVALUATION_RESULT,
            semconv.GEN_AI_EVALUATION_NAME: name,
        }
        if verdict.score is not None:
            attributes[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = float(verdict.score)
        if verdict.label:
            attributes[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = verdict.label
        if verdict.explanation:
            attributes[semconv.GEN_AI_EVALUATION_EXPLANATION] = str(verdict.explanation)
        if item.response_id:
            attributes[semconv.GEN_AI_RESPONSE_ID] = item.response_id
        if item.agent:
            attributes[semconv.GEN_AI_AGENT_NAME] = item.agent
        for key, value in attributes.items():
            any_value = AnyValue(double_value=value) if isinstance(value, float) else AnyValue(string_value=value)
            record.attributes.append(KeyValue(key=key, value=any_value))
    return request
