"""The trace list's filter language: free text plus `key:value` terms, compiled to parameterised SQL.

    checkout agent:planner status:error since:15m conv:abc resp:resp_1 trace:4bf9 service:api model:gpt-4o

Free text matches span names, agent and tool names, service names and ids (case-insensitive substring); name terms
(agent, tool, service, model) match exactly, ignoring case, with `*` as a wildcard (`model:gpt-4*`). Terms
combine with AND; a trace is listed when its spans match. Values never reach the SQL text: they are bound as
parameters. A mistake is reported with its position so the filter bar can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tracekit.errors import QueryError

KEYS = {
    "agent": "agent name (gen_ai.agent.name)",
    "status": "error, ok or running (traces with spans in flight)",
    "since": "a duration (30s, 15m, 2h, 7d) or an ISO time",
    "until": "a duration ago or an ISO time",
    "conv": "conversation id",
    "resp": "response id",
    "trace": "trace id or prefix",
    "service": "service.name",
    "model": "request or response model",
    "tool": "tool name",
}
ALIASES = {"conversation": "conv", "response": "resp", "svc": "service", "status_code": "status"}
_TEXT_COLUMNS = ("name", "agent_name", "tool_name", "service_name", "trace_id", "conversation_id")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(QueryError):
    """A filter the trace list cannot apply; `column` points at the offending term (1-based)."""


@dataclass
class TraceFilter:
    """A parsed filter: where-clause fragments over `spans` and their parameters."""

    text: str = ""
    span_conditions: list[str] = field(default_factory=list)
    trace_conditions: list[str] = field(default_factory=list)  # conditions on the whole trace (status:ok)
    params: list[Any] = field(default_factory=list)
    trace_params: list[Any] = field(default_factory=list)
    running: bool = False  # status:running: only traces with open spans (tracekit.store.open_spans)

    @property
    def empty(self) -> bool:
        return not self.span_conditions and not self.trace_conditions and not self.running


def _time(value: str, now: datetime, column: int) -> datetime:
    match = _DURATION.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{value!r} is neither a duration (15m, 2h, 7d) nor an ISO time", line=1,
                          column=column) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # a naive time is the user's local time
    return parsed.astimezone(timezone.utc)


_TERM = re.compile(r'[^\s:"]+:"[^"]*"|"[^"]*"|\S+')


def _tokens(text: str) -> list[tuple[str, int]]:
    """Whitespace-separated terms (double quotes group words) with their 1-based start columns."""
    if text.count('"') % 2:
        raise FilterError("unclosed quote", line=1, column=text.rindex('"') + 1)
    return [(match.group().replace('"', ""), match.start() + 1) for match in _TERM.finditer(text)]


def _pattern(value: str) -> str:
    """A name match: exact and case-insensitive, `*` matching any run of characters (`gpt-4*`)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def parse_filter(text: str, *, now: datetime | None = None) -> TraceFilter:
    """Compile the filter text; raise FilterError (with the column) on an unknown key or a bad value."""
    now = now or datetime.now(timezone.utc)
    result = TraceFilter(text=text)
    for token, column in _tokens(text):
        key, sep, value = token.partition(":")
        key = ALIASES.get(key.lower(), key.lower())
        if not sep or key not in KEYS:
            if sep and re.fullmatch(r"[a-z_]+", key) and key not in ("http", "https"):
                raise FilterError(f"unknown filter key {key!r}; use one of: {', '.join(KEYS)}", line=1, column=column)
            pattern = f"%{_pattern(token)}%"
            matches = [f"{column} ILIKE ? ESCAPE '\\'" for column in _TEXT_COLUMNS]
            result.span_conditions.append("(" + " OR ".join(matches) + ")")
            result.params.extend([pattern] * len(_TEXT_COLUMNS))
            continue
        if not value:
            raise FilterError(f"{key}: needs a value ({KEYS[key]})", line=1, column=column)
        if key == "agent":
            result.span_conditions.append("agent_name ILIKE ? ESCAPE '\\'")
            result.params.append(_pattern(value))
        elif key == "tool":
            result.span_conditions.append("tool_name ILIKE ? ESCAPE '\\'")
            result.params.append(_pattern(value))
        elif key == "service":
            result.span_conditions.append("service_name ILIKE ? ESCAPE '\\'")
            result.params.append(_pattern(value))
        elif key == "model":
            result.span_conditions.append(
                "(request_model ILIKE ? ESCAPE '\\' OR response_model ILIKE ? ESCAPE '\\')")
            result.params.extend([_pattern(value)] * 2)
        elif key == "conv":
            result.span_conditions.append("conversation_id = ?")
            result.params.append(value)
        elif key == "resp":
            result.span_conditions.append("response_id = ?")
            result.params.append(value)
        elif key == "trace":
            if not re.fullmatch(r"[0-9a-fA-F]{1,32}", value):
                raise FilterError(f"trace: expects hex digits, got {value!r}", line=1, column=column)
            result.span_conditions.append("starts_with(trace_id, ?)")
            result.params.append(value.lower())
        elif key == "status":
            lowered = value.lower()
            if lowered in ("error", "err", "failed"):
                result.span_conditions.append("status_code = 'ERROR'")
            elif lowered in ("running", "live", "open"):
                result.running = True
            elif lowered in ("ok", "success", "unset"):
                result.trace_conditions.append(
                    "trace_id NOT IN (SELECT trace_id FROM spans WHERE status_code = 'ERROR')")
            else:
                raise FilterError(f"status: expects error, ok or running, got {value!r}", line=1, column=column)
        elif key == "since":
            # Bound as text: parameters travel as JSON when the reader is a running collector's read API.
            result.span_conditions.append("start_time >= CAST(? AS TIMESTAMP)")
            result.params.append(_time(value, now, column).replace(tzinfo=None).isoformat(sep=" "))
        elif key == "until":
            result.span_conditions.append("start_time <= CAST(? AS TIMESTAMP)")
            result.params.append(_time(value, now, column).replace(tzinfo=None).isoformat(sep=" "))
    return result
