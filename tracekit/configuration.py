"""`tracekit.configure()` and `tracekit.instrument()`: one call each to get GenAI telemetry flowing.

configure() builds the tracer, logger and meter providers with OTLP exporters (to the local tracekit collector by
default) or Azure Monitor exporters (a connection string given, or APPLICATIONINSIGHTS_CONNECTION_STRING set), with
the redaction processors FIRST in each pipeline so no exporter ever sees an unredacted value. If the application
already installed an SDK TracerProvider, configure() does not replace it (that would orphan the application's own
exporters): it puts the redaction processor in front of the existing processors and adds a span exporter only for
a destination asked for (an endpoint or a connection string), never a second one to Azure Monitor.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import urlparse

from tracekit import semconv
from tracekit.content import ContentMode, get_content_settings, set_content_recording
from tracekit.redaction import RedactionPolicy
from tracekit.tracing import read_latest_conventions

__all__ = ["configure", "ConfigureResult", "instrument", "uninstrument", "INSTRUMENTORS"]

_log = logging.getLogger(__name__)

DEFAULT_OTLP_GRPC_ENDPOINT = "http://127.0.0.1:4317"

# name -> (the instrumentor's `opentelemetry_instrumentor` entry point, the import that must succeed for the
# framework to be "installed"). Instrumentors are found the way `opentelemetry-instrument` finds them, so the core
# names no instrumentor module (imports go from the instrumentors to the core, never back).
INSTRUMENTORS: dict[str, tuple[str, str]] = {
    "langchain": ("tracekit_langchain", "langchain_core"),
    "openai": ("tracekit_openai", "openai"),
    "openai_agents": ("tracekit_openai_agents", "agents"),
}


@dataclass
class ConfigureResult:
    """What configure() set up, so callers (and tests) can flush or shut it down."""

    tracer_provider: Any
    logger_provider: Any = None
    meter_provider: Any = None
    destination: str = "otlp"  # "otlp", "azure-monitor" or "existing"
    endpoint: str | None = None
    instrumented: list[str] = field(default_factory=list)

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        """Export everything buffered now."""
        for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
            if provider is not None and hasattr(provider, "force_flush"):
                provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop every provider configure() created."""
        for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
            if provider is not None and hasattr(provider, "shutdown"):
                provider.shutdown()


def _otlp_settings(endpoint: str | None, protocol: str | None) -> tuple[str, str]:
    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_OTLP_GRPC_ENDPOINT
    protocol = (protocol or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").lower()
    if not protocol:
        protocol = "http/protobuf" if urlparse(endpoint if "://" in endpoint else f"http://{endpoint}").port == 4318 else "grpc"
    if protocol in ("http", "http/protobuf"):
        protocol = "http/protobuf"
    elif protocol != "grpc":
        raise ValueError(f"OTLP protocol {protocol!r}: use 'grpc' or 'http/protobuf'")
    return endpoint, protocol


def _otlp_exporters(endpoint: str, protocol: str, headers: Mapping[str, str] | None) -> tuple[Any, Any, Any]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        insecure = parsed.scheme != "https"
        target = parsed.netloc
        kwargs: dict[str, Any] = {"endpoint": target, "insecure": insecure}
        if headers:
            kwargs["headers"] = dict(headers)
        return OTLPSpanExporter(**kwargs), OTLPLogExporter(**kwargs), OTLPMetricExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    base = endpoint.rstrip("/")
    extra = {"headers": dict(headers)} if headers else {}
    return (
        HttpSpanExporter(endpoint=f"{base}/v1/traces", **extra),
        HttpLogExporter(endpoint=f"{base}/v1/logs", **extra),
        HttpMetricExporter(endpoint=f"{base}/v1/metrics", **extra),
    )


def _azure_exporters(connection_string: str, options: Mapping[str, Any] | None = None, *, logs: bool = True,
                     metrics: bool = True) -> tuple[Any, Any, Any]:
    """(span, log, metric) exporters for Application Insights; the log/metric ones only when wanted (each Azure
    exporter starts its own background machinery)."""
    from azure.monitor.opentelemetry.exporter import (AzureMonitorLogExporter, AzureMonitorMetricExporter,
                                                      AzureMonitorTraceExporter)

    kwargs = dict(options or {})
    return (
        AzureMonitorTraceExporter(connection_string=connection_string, **kwargs),
        AzureMonitorLogExporter(connection_string=connection_string, **kwargs) if logs else None,
        AzureMonitorMetricExporter(connection_string=connection_string, **kwargs) if metrics else None,
    )


def genai_metric_views() -> list[Any]:
    """Views giving the GenAI client histograms (under either convention set's names) the bucket boundaries the
    spec prescribes."""
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    tokens = ExplicitBucketHistogramAggregation(semconv.TOKEN_USAGE_BUCKETS)
    durations = ExplicitBucketHistogramAggregation(semconv.OPERATION_DURATION_BUCKETS)
    return [View(instrument_name=name, aggregation=tokens)
            for name in (semconv.METRIC_TOKEN_USAGE, semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS,
                         semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS)] + \
           [View(instrument_name=name, aggregation=durations)
            for name in (semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TIME_TO_FIRST_CHUNK,
                         semconv.METRIC_INFERENCE_DURATION, semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK)]


def exemplar_filter(exemplars: bool | None = None) -> Any:
    """The exemplar filter configure() gives its MeterProvider: `trace_based` for True, `always_off` for False; for
    None, None when OTEL_METRICS_EXEMPLAR_FILTER is set (the SDK then reads it), else `always_off`."""
    from opentelemetry.sdk.environment_variables import OTEL_METRICS_EXEMPLAR_FILTER
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, TraceBasedExemplarFilter

    if exemplars is None:
        return None if os.environ.get(OTEL_METRICS_EXEMPLAR_FILTER) else AlwaysOffExemplarFilter()
    return TraceBasedExemplarFilter() if exemplars else AlwaysOffExemplarFilter()


def _azure_connection_string(connection_string: str | None, endpoint: str | None) -> str | None:
    """Where Azure Monitor export goes: `connection_string`, else APPLICATIONINSIGHTS_CONNECTION_STRING (as Azure
    Monitor's own distribution reads it) unless an OTLP `endpoint` was passed in code."""
    if connection_string:
        return connection_string
    if endpoint:
        return None
    return os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None


def _exports_to_azure_monitor(provider: Any) -> bool:
    """Whether one of the provider's span processors already hands spans to an Azure Monitor exporter."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
    return any(isinstance(getattr(processor, "span_exporter", None), AzureMonitorTraceExporter)
               for processor in processors)


def _prepend_span_processor(provider: Any, processor: Any) -> bool:
    """Put `processor` before the provider's existing processors (the SDK only offers append)."""
    multi = getattr(provider, "_active_span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    if multi is None or processors is None:
        return False
    from tracekit.redaction.sdk import RedactingSpanProcessor

    if any(isinstance(existing, RedactingSpanProcessor) for existing in processors):
        return True
    with multi._lock:
        multi._span_processors = (processor, *processors)
    return True


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    connection_string: str | None = None,
    azure_options: Mapping[str, Any] | None = None,
    content: bool | str | ContentMode | None = None,
    redaction: RedactionPolicy | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    logs: bool = True,
    metrics: bool = True,
    instrument: bool | Sequence[str] = False,
    set_global: bool = True,
    live: bool | None = None,
    exemplars: bool | None = None,
) -> ConfigureResult:
    """Set up OpenTelemetry for GenAI telemetry and return what was built.

    * Default destination: OTLP to `endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else the local tracekit collector
      (gRPC on 127.0.0.1:4317). `protocol` is `grpc` or `http/protobuf` (default `OTEL_EXPORTER_OTLP_PROTOCOL`,
      else guessed from the port).
    * `connection_string`, else `APPLICATIONINSIGHTS_CONNECTION_STRING` when no `endpoint` is passed: Azure Monitor
      instead of OTLP; `azure_options` go to the Azure Monitor exporters (e.g. `credential=` for Entra ID auth,
      `disable_offline_storage=True`).
    * An application that already set an SDK TracerProvider keeps it: redaction goes in front of its processors,
      and a span exporter is added for `endpoint` or the connection string (unless the pipeline already exports to
      Azure Monitor). Its logger and meter providers are left as they are.
    * `content`: turn message-content recording on/off (default: the environment, i.e. off).
    * `redaction`: the policy applied in-process to every span and log record before export (default: built-in
      rules, or `TRACEKIT_REDACTION_FILE`).
    * `instrument=True` also calls `tracekit.instrument()` (or pass framework names).
    * `service_name` falls back to `OTEL_SERVICE_NAME`.
    * `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` makes tracekit emit the latest GenAI convention
      names (docs/conventions.md); it is read here and by `instrument()`.
    * `live` (default on, `TRACEKIT_LIVE=false` turns it off): with OTLP export and logs on, every span that starts
      also sends a `tracekit.span.started` log record and a heartbeat runs while spans are open (tracekit.live), so
      the collector can show work in flight. Not added to an existing TracerProvider or for Azure Monitor.
    * `exemplars`: whether metric points carry exemplars (the trace and span a measurement was taken in, linking a
      latency histogram to the slow call's trace). Default: as `OTEL_METRICS_EXEMPLAR_FILTER` says when it is set,
      else off: sampling one costs every record while a span is current, and the Azure Monitor exporter drops them
      (docs/decisions/2026-12-07-exemplars-off-by-default.md). `True` samples them for spans being recorded
      (`trace_based`).
    """
    from opentelemetry import _logs, metrics as otel_metrics, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tracekit.live import LiveSpanProcessor, live_enabled
    from tracekit.redaction.sdk import RedactingLogRecordProcessor, RedactingSpanProcessor

    read_latest_conventions()
    if content is not None:
        set_content_recording(content, redaction=redaction)
    elif redaction is not None:
        set_content_recording(get_content_settings().mode, redaction=redaction)
    policy = redaction or get_content_settings().redaction or RedactionPolicy.default()

    connection_string = _azure_connection_string(connection_string, endpoint)
    existing = trace.get_tracer_provider()
    if set_global and isinstance(existing, TracerProvider):
        # The application configured OpenTelemetry itself: keep its pipeline, make it safe, add only what was asked.
        _prepend_span_processor(existing, RedactingSpanProcessor(policy))
        result = ConfigureResult(existing, _logs.get_logger_provider(), otel_metrics.get_meter_provider(), "existing")
        if connection_string:
            if not _exports_to_azure_monitor(existing):
                existing.add_span_processor(BatchSpanProcessor(
                    _azure_exporters(connection_string, azure_options, logs=False, metrics=False)[0]))
        elif endpoint:
            existing.add_span_processor(BatchSpanProcessor(
                _otlp_exporters(*_otlp_settings(endpoint, protocol), headers)[0]))
            result.endpoint = endpoint
        _log.info("tracekit.configure: an SDK TracerProvider is already set; reusing it with redaction in front")
        result.instrumented = _maybe_instrument(instrument)
        return result

    attributes: dict[str, Any] = dict(resource_attributes or {})
    if service_name:
        attributes[semconv.SERVICE_NAME] = service_name
    resource = Resource.create(attributes)
    live_on = live_enabled(live) and logs and not connection_string
    if live_on and semconv.SERVICE_INSTANCE_ID not in resource.attributes:
        # The heartbeat names the process by its resource: one instance id per configured process.
        resource = resource.merge(Resource({semconv.SERVICE_INSTANCE_ID: str(uuid.uuid4())}))

    if connection_string:
        span_exporter, log_exporter, metric_exporter = _azure_exporters(connection_string, azure_options, logs=logs,
                                                                        metrics=metrics)
        destination, where = "azure-monitor", None
    else:
        where, otlp_protocol = _otlp_settings(endpoint, protocol)
        span_exporter, log_exporter, metric_exporter = _otlp_exporters(where, otlp_protocol, headers)
        destination = "otlp"

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(RedactingSpanProcessor(policy))
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    result = ConfigureResult(tracer_provider, destination=destination, endpoint=where)

    if logs:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(RedactingLogRecordProcessor(policy))
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        result.logger_provider = logger_provider
        if live_on:
            tracer_provider.add_span_processor(LiveSpanProcessor(logger_provider))
    if metrics:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(metric_exporter)
        result.meter_provider = MeterProvider(resource=resource, metric_readers=[reader], views=genai_metric_views(),
                                              exemplar_filter=exemplar_filter(exemplars))

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        if result.logger_provider is not None:
            _logs.set_logger_provider(result.logger_provider)
        if result.meter_provider is not None:
            otel_metrics.set_meter_provider(result.meter_provider)
    result.instrumented = _maybe_instrument(instrument)
    return result


def _maybe_instrument(instrument_arg: bool | Sequence[str]) -> list[str]:
    if instrument_arg is True:
        return instrument()
    if instrument_arg:
        return instrument(*instrument_arg)
    return []


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _instrumentor(entry_point: str) -> Any:
    """A new instance of the instrumentor registered under `entry_point`."""
    from importlib.metadata import entry_points

    found = entry_points(group="opentelemetry_instrumentor", name=entry_point)
    if not found:
        raise RuntimeError(f"the instrumentor entry point {entry_point!r} is not registered: install tracekit-agents "
                           "(pip install tracekit-agents, or pip install -e . in a checkout)")
    return next(iter(found)).load()()


def instrument(*frameworks: str, **kwargs: Any) -> list[str]:
    """Instrument the installed frameworks (all of `langchain`, `openai`, `openai_agents` by default).

    Returns the names instrumented. Naming a framework that is not installed raises ValueError; frameworks that are
    simply absent are skipped when none are named. Keyword arguments go to each `BaseInstrumentor.instrument()`
    (e.g. `tracer_provider=`, `meter_provider=`).
    """
    unknown = [name for name in frameworks if name not in INSTRUMENTORS]
    if unknown:
        raise ValueError(f"unknown framework(s) {unknown}; tracekit instruments {', '.join(INSTRUMENTORS)}")
    done = []
    for name in frameworks or tuple(INSTRUMENTORS):
        entry_point, requirement = INSTRUMENTORS[name]
        if not _installed(requirement):
            if frameworks:
                raise ValueError(f"cannot instrument {name}: the package providing `{requirement}` is not installed")
            continue
        instrumentor = _instrumentor(entry_point)
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**kwargs)
        done.append(name)
    return done


def uninstrument(*frameworks: str) -> None:
    """Undo `instrument()` for the named frameworks (all by default)."""
    for name in frameworks or tuple(INSTRUMENTORS):
        entry_point, requirement = INSTRUMENTORS[name]
        if not _installed(requirement):
            continue
        instrumentor = _instrumentor(entry_point)
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
