"""`tracekit lint`: conformance of stored spans to the GenAI conventions, per instrumentation scope, and loops.

Each span is checked by tracekit.lint.rules; findings are grouped by instrumentation scope (name, version), rule,
key and message, with the number of spans affected and an example trace id. Loops (tracekit.loops) are found per
trace and reported under the scope of the trace's spans that loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracekit import semconv
from tracekit.lint.registry import conventions
from tracekit.lint.rules import check_span
from tracekit.loops import DEFAULT_THRESHOLD, HANDOFF_OPERATIONS, LoopSpan, find_loops
from tracekit.store.reader import StoreReader

MAX_SPANS = 500_000  # a lint run reads at most this many spans (newest first)


@dataclass
class Group:
    scope_name: str
    scope_version: str
    rule: str
    key: str
    message: str
    replacement: str | None
    spans: int = 0
    example_trace_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"scope": {"name": self.scope_name, "version": self.scope_version}, "rule": self.rule,
                "key": self.key, "message": self.message, "replacement": self.replacement, "spans": self.spans,
                "example_trace_id": self.example_trace_id}


@dataclass
class Report:
    spans_checked: int = 0
    scopes: set[tuple[str, str]] = field(default_factory=set)
    groups: dict[tuple[str, str, str, str, str], Group] = field(default_factory=dict)

    def add(self, scope: tuple[str, str], rule: str, key: str, message: str, replacement: str | None,
            trace_id: str, spans: int = 1) -> None:
        group_key = (*scope, rule, key, message)
        group = self.groups.get(group_key)
        if group is None:
            group = self.groups[group_key] = Group(*scope, rule, key, message, replacement,
                                                   example_trace_id=trace_id)
        group.spans += spans

    @property
    def findings(self) -> list[Group]:
        return sorted(self.groups.values(), key=lambda g: (g.scope_name, g.scope_version, g.rule, -g.spans, g.key))

    def to_dict(self) -> dict[str, Any]:
        rules = conventions()
        return {"conventions": {"release": rules.release, "source": rules.source,
                                "opentelemetry_semantic_conventions": rules.package_version},
                "spans_checked": self.spans_checked,
                "scopes": [{"name": name, "version": version} for name, version in sorted(self.scopes)],
                "findings": [group.to_dict() for group in self.findings]}


def lint_store(reader: StoreReader, *, since: dt.timedelta | None = None, trace_id: str | None = None,
               loop_threshold: int = DEFAULT_THRESHOLD) -> Report:
    conditions, params = [], []
    if since is not None:
        conditions.append("s.start_time >= ?")
        params.append(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - since)
    if trace_id:
        conditions.append("s.trace_id = ?")
        params.append(trace_id.lower())
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"""
        SELECT s.trace_id, s.span_id, s.parent_span_id, s.kind, s.start_time_ns, coalesce(s.scope_name, '') AS scope,
               coalesce(s.scope_version, '') AS version, s.operation_name, s.agent_name, s.tool_name,
               s.attributes::VARCHAR AS attributes,
               (SELECT list(DISTINCT e.name) FROM span_events e
                WHERE e.trace_id = s.trace_id AND e.span_id = s.span_id AND e.name LIKE 'gen_ai.%') AS events
        FROM spans s {where}
        ORDER BY s.start_time_ns DESC LIMIT {MAX_SPANS}
    """
    report = Report()
    rules = conventions()
    by_trace: dict[str, list[tuple[tuple[str, str], LoopSpan]]] = {}
    for row in reader.sql(sql, params).to_pylist():
        attributes = orjson.loads(row["attributes"] or "{}")
        scope = (row["scope"], row["version"])
        report.spans_checked += 1
        report.scopes.add(scope)
        for finding in check_span(attributes, kind=row["kind"], event_names=row["events"] or (), rules=rules):
            report.add(scope, finding.rule, finding.key, finding.message, finding.replacement, row["trace_id"])
        if row["operation_name"] in HANDOFF_OPERATIONS or row["operation_name"] in semconv.INFERENCE_OPERATIONS:
            by_trace.setdefault(row["trace_id"], []).append((scope, LoopSpan(
                row["span_id"], row["parent_span_id"], row["start_time_ns"], row["operation_name"],
                row["agent_name"], row["tool_name"], attributes)))
    for trace, spans in by_trace.items():
        scopes = {span.span_id: scope for scope, span in spans}
        for loop in find_loops(trace, [span for _, span in spans], loop_threshold):
            scope = scopes[loop.span_ids[0]]
            report.add(scope, "loop", loop.kind, loop.message, None, trace, spans=len(loop.span_ids))
    return report
