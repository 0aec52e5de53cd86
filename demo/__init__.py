"""`tracekit demo`: a realistic multi-agent workload, recorded by tracekit's own instrumentation and sent over OTLP.

No network beyond the collector and no API key: the models are langchain-core's fake chat models scripted with
plausible answers, the agents are real LangGraph graphs with real tools, and everything goes through the same
instrumentation a user's application would use.

The demo is an application of tracekit, not part of its core: it lives in the top-level `demo/` folder (installed
as `tracekit.demo`) because it uses the LangChain instrumentor, and imports run from the instrumentors to the core,
never back.

    from tracekit.demo import run_demo
    sent = run_demo("http://127.0.0.1:4317")
"""

from __future__ import annotations

from typing import Callable

from tracekit.demo.pipeline import DemoPipeline, default_endpoint

__all__ = ["run_demo", "default_endpoint"]


def run_demo(endpoint: str, *, protocol: str = "grpc", conversations: int = 3, timeout_s: float = 10.0,
             on_progress: Callable[[int], None] | None = None) -> int:
    """Run the demo workload and send its telemetry to the OTLP `endpoint`; returns the number of spans sent.

    `protocol` is `grpc` (endpoint like `http://127.0.0.1:4317`) or `http` (like `http://127.0.0.1:4318`).
    `on_progress(done)` is called after each conversation. Raises tracekit.errors.CollectorUnavailable when the
    collector does not accept the spans.
    The application's global OpenTelemetry setup is left untouched: the demo uses its own providers.
    """
    try:
        from tracekit.demo.scenario import run_conversations
    except ImportError as error:  # the frameworks are an optional extra
        from tracekit.errors import TracekitError

        raise TracekitError(
            f"the demo runs on LangChain and LangGraph, which are not installed ({error.name or error}); "
            "install them with: pip install 'tracekit-agents[agents]'"
        ) from error

    with DemoPipeline(endpoint, protocol=protocol, timeout_s=timeout_s) as pipeline:
        run_conversations(pipeline, conversations, on_progress)
    return pipeline.spans_sent
