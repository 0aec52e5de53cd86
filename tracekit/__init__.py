"""tracekit: observability for AI agents.

    import tracekit
    tracekit.configure(service_name="trip-planner")   # OTLP to the local collector (or connection_string=... for Azure)
    tracekit.instrument()                             # LangChain/LangGraph, OpenAI SDK, OpenAI Agents SDK

    with tracekit.task("plan a trip", agent="orchestrator"):
        with tracekit.agent("flight-agent", conversation_id=cid):
            ...

Everything here is imported lazily, so `import tracekit` stays fast and pulls in no framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "configure": "tracekit.configuration",
    "ConfigureResult": "tracekit.configuration",
    "instrument": "tracekit.configuration",
    "uninstrument": "tracekit.configuration",
    "agent": "tracekit.api",
    "tool": "tracekit.api",
    "task": "tracekit.api",
    "agent_to_agent": "tracekit.api",
    "agent_state": "tracekit.api",
    "agent_planning": "tracekit.api",
    "agent_orchestration": "tracekit.api",
    "current_conversation_id": "tracekit.api",
    "GenAISpan": "tracekit.api",
    "record_evaluation": "tracekit.evaluation",
    "ContentMode": "tracekit.content",
    "set_content_recording": "tracekit.content",
    "get_content_settings": "tracekit.content",
    "RedactionPolicy": "tracekit.redaction",
}

__all__ = [
    "__version__",
    "configure", "ConfigureResult", "instrument", "uninstrument",
    "agent", "tool", "task", "agent_to_agent", "agent_state", "agent_planning", "agent_orchestration",
    "current_conversation_id", "GenAISpan",
    "record_evaluation",
    "ContentMode", "set_content_recording", "get_content_settings",
    "RedactionPolicy",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers; at runtime names are resolved by __getattr__
    from tracekit.api import (GenAISpan, agent, agent_orchestration, agent_planning, agent_state, agent_to_agent,
                              current_conversation_id, task, tool)
    from tracekit.configuration import ConfigureResult, configure, instrument, uninstrument
    from tracekit.content import ContentMode, get_content_settings, set_content_recording
    from tracekit.evaluation import record_evaluation
    from tracekit.redaction import RedactionPolicy


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tracekit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
