"""The GenAI metrics tracekit records, under the names of either convention set (tracekit.tracing.latest_conventions).

Default (what Application Insights reads): `gen_ai.client.operation.duration`, `gen_ai.client.token.usage` (by
`gen_ai.token.type`) and, for streamed calls, `gen_ai.client.operation.time_to_first_chunk`.

Latest (semantic-conventions-genai): `gen_ai.client.inference.duration`; the `gen_ai.client.inference.usage.*`
counters (input, output, cache read, cache write, reasoning; by `gen_ai.token.modality`) and the
`gen_ai.client.inference.operation.{input,output}_tokens` histograms; `gen_ai.client.inference.time_to_first_chunk`;
`gen_ai.invocation.duration` for agents and conversation turns, `gen_ai.execute_tool.duration` for tools.

Shared by the instrumentors and tracekit.api, so both record the same instruments with the same attributes.
"""

from __future__ import annotations

from typing import Any, Mapping

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpHistogram

from tracekit import semconv

__all__ = ["GenAIMetrics"]

try:  # the API's stand-in until a MeterProvider is set; private, so only its absence is planned for
    from opentelemetry.metrics._internal.instrument import _ProxyHistogram as _PROXY_HISTOGRAM
except ImportError:  # pragma: no cover
    _PROXY_HISTOGRAM = ()  # type: ignore[assignment,misc]

# Attributes every inference metric carries (metric_attributes.gen_ai), when the span has them; `_inference_sets`
# spells them out again for its key.
_INFERENCE_KEYS = (semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL,
                   semconv.GEN_AI_RESPONSE_MODEL, semconv.SERVER_ADDRESS, semconv.SERVER_PORT)
_AGENT_KEYS = (semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_AGENT_NAME, semconv.GEN_AI_AGENT_ID,
               semconv.GEN_AI_REQUEST_MODEL)
_TOOL_KEYS = (semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_TOOL_NAME, semconv.GEN_AI_TOOL_TYPE,
              semconv.GEN_AI_AGENT_NAME)


def _pick(attributes: Mapping[str, Any], keys: tuple[str, ...], error_type: str | None = None) -> dict[str, Any]:
    picked = {key: attributes[key] for key in keys if attributes.get(key) is not None}
    if error_type:
        picked[semconv.ERROR_TYPE] = error_type
    return picked


# Distinct inference attribute sets kept (the SDK's own default cardinality limit per metric is 2000).
_MAX_ATTRIBUTE_SETS = 2000


class _InferenceSets:
    """The attribute dicts one model call's metrics are recorded with, for one set of span attributes. Shared
    between calls and never changed (the SDK copies what it is given)."""

    __slots__ = ("plain", "with_error", "input_tokens", "output_tokens", "by_modality")

    def __init__(self, plain: dict[str, Any], error_type: str | None) -> None:
        self.plain = plain
        self.with_error = {**plain, semconv.ERROR_TYPE: error_type} if error_type else plain
        self.input_tokens = {**plain, semconv.GEN_AI_TOKEN_TYPE: "input"}
        self.output_tokens = {**plain, semconv.GEN_AI_TOKEN_TYPE: "output"}
        self.by_modality = {**plain, semconv.GEN_AI_TOKEN_MODALITY: semconv.TOKEN_MODALITY_UNKNOWN}


class GenAIMetrics:
    """The instruments of one instrumentation scope, named after one convention set (`latest`)."""

    def __init__(self, scope: str, meter_provider: Any = None, *, latest: bool = False) -> None:
        self.latest = latest
        self._sets: dict[tuple[Any, ...], _InferenceSets] = {}
        meter = metrics.get_meter(scope, meter_provider=meter_provider)
        durations = list(semconv.OPERATION_DURATION_BUCKETS)
        tokens = list(semconv.TOKEN_USAGE_BUCKETS)

        def histogram(name: str, unit: str, description: str, buckets: list[Any] | None = None) -> Any:
            return meter.create_histogram(name, unit=unit, description=description,
                                          explicit_bucket_boundaries_advisory=buckets)

        if latest:
            self.duration = histogram(semconv.METRIC_INFERENCE_DURATION, "s", "GenAI inference duration", durations)
            self.time_to_first_chunk = histogram(semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK, "s",
                                                 "Time to receive the first chunk of a streamed response", durations)
            self.usage = {
                name: meter.create_counter(name, unit="{token}", description=description)
                for name, description in (
                    (semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS, "Input tokens used, including cached tokens"),
                    (semconv.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS, "Output tokens used, including reasoning tokens"),
                    (semconv.METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS, "Input tokens served from a provider cache"),
                    (semconv.METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS, "Input tokens written to a provider cache"),
                    (semconv.METRIC_INFERENCE_USAGE_REASONING_TOKENS, "Output tokens used for reasoning"))}
            self.operation_input_tokens = histogram(semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS, "{token}",
                                                    "Input tokens per inference operation", tokens)
            self.operation_output_tokens = histogram(semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, "{token}",
                                                     "Output tokens per inference operation", tokens)
            self.invocation_duration = histogram(semconv.METRIC_INVOCATION_DURATION, "s",
                                                 "Duration of an agent invocation")
            self.tool_duration = histogram(semconv.METRIC_EXECUTE_TOOL_DURATION, "s", "Duration of a tool execution")
        else:
            self.duration = histogram(semconv.METRIC_OPERATION_DURATION, "s", "GenAI operation duration", durations)
            self.time_to_first_chunk = histogram(semconv.METRIC_TIME_TO_FIRST_CHUNK, "s",
                                                 "Time to receive the first chunk of a streamed response", durations)
            self.token_usage = histogram(semconv.METRIC_TOKEN_USAGE, "{token}",
                                         "Number of input and output tokens used", tokens)

    def records_nowhere(self) -> bool:
        """Whether recording is a no-op (no MeterProvider yet, or a no-op one): callers then skip building the
        attribute sets on every call."""
        instrument = self.duration
        if instrument.__class__ is _PROXY_HISTOGRAM:
            return getattr(instrument, "_real_instrument", True) is None
        return isinstance(instrument, NoOpHistogram)

    def record_inference(
        self,
        span_attributes: Mapping[str, Any],
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        error_type: str | None = None,
        *,
        cache_read: int | None = None,
        cache_write: int | None = None,
        reasoning: int | None = None,
        time_to_first_chunk: float | None = None,
        context: Context | None = None,
    ) -> None:
        """The duration, token and (streamed) time-to-first-chunk metrics of one model call. `context`: the one
        holding the call's span, where the caller has it (exemplars then link to that span whichever context the
        call ends in, and the SDK does not look the current one up for every record); else the current one."""
        if self.records_nowhere():
            return
        sets = self._inference_sets(span_attributes, error_type)
        self.duration.record(duration_s, sets.with_error, context)
        if time_to_first_chunk is not None:
            self.time_to_first_chunk.record(time_to_first_chunk, sets.plain, context)
        if not self.latest:
            if input_tokens is not None:
                self.token_usage.record(input_tokens, sets.input_tokens, context)
            if output_tokens is not None:
                self.token_usage.record(output_tokens, sets.output_tokens, context)
            return
        # Input and output counters for every call, failed ones included, 0 where the provider reported nothing
        # (token-metrics.yaml); none of the providers here splits usage by modality, hence `unknown`. The cache and
        # reasoning subsets only when there are some: adding 0 to a counter changes no sum and costs a record.
        usage = self.usage
        usage[semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS].add(int(input_tokens or 0), sets.by_modality, context)
        usage[semconv.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS].add(int(output_tokens or 0), sets.by_modality, context)
        for name, value in ((semconv.METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS, cache_read),
                            (semconv.METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS, cache_write),
                            (semconv.METRIC_INFERENCE_USAGE_REASONING_TOKENS, reasoning)):
            if value:
                usage[name].add(int(value), sets.by_modality, context)
        self.operation_input_tokens.record(int(input_tokens or 0), sets.with_error, context)
        self.operation_output_tokens.record(int(output_tokens or 0), sets.with_error, context)

    def _inference_sets(self, span_attributes: Mapping[str, Any], error_type: str | None) -> _InferenceSets:
        """The attribute sets of one (operation, provider, models, server, error type), built on first use: an
        application calls a handful of models, so per call this is one tuple and one dict lookup."""
        get = span_attributes.get
        key = (get(semconv.GEN_AI_OPERATION_NAME), get(semconv.GEN_AI_PROVIDER_NAME), get(semconv.GEN_AI_REQUEST_MODEL),
               get(semconv.GEN_AI_RESPONSE_MODEL), get(semconv.SERVER_ADDRESS), get(semconv.SERVER_PORT), error_type)
        try:
            sets = self._sets.get(key)
        except TypeError:  # an unhashable value where a string belongs: recorded as given, not kept
            return _InferenceSets(_pick(span_attributes, _INFERENCE_KEYS), error_type)
        if sets is None:
            if len(self._sets) >= _MAX_ATTRIBUTE_SETS:  # a runaway cardinality: start over rather than grow
                self._sets.clear()
            sets = self._sets[key] = _InferenceSets(_pick(span_attributes, _INFERENCE_KEYS), error_type)
        return sets

    def record_agent(self, span_attributes: Mapping[str, Any], duration_s: float,
                     error_type: str | None = None) -> None:
        """`gen_ai.invocation.duration` of one agent invocation or conversation turn (latest names only)."""
        if self.latest and not self.records_nowhere():
            self.invocation_duration.record(duration_s, _pick(span_attributes, _AGENT_KEYS, error_type))

    def record_tool(self, span_attributes: Mapping[str, Any], duration_s: float, error_type: str | None = None) -> None:
        """`gen_ai.execute_tool.duration` of one tool execution (latest names only)."""
        if self.latest and not self.records_nowhere():
            self.tool_duration.record(duration_s, _pick(span_attributes, _TOOL_KEYS, error_type))
