"""Alert check results for people (a table), for tools (JSON) and for CI systems (JUnit XML)."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

from rich.table import Table
from rich.text import Text

from tracekit.alerts.check import RuleResult
from tracekit.terminal_text import clean

STATUS_STYLE = {"fired": "bold red", "ok": "green", "error": "bold yellow", "disabled": "dim"}
MAX_ROWS_SHOWN = 10


def to_table(results: list[RuleResult]) -> Table:
    """One line per rule: status, severity, condition, and the values (firing rows first) with their dimensions."""
    table = Table(expand=True)
    table.add_column("rule", ratio=2, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("condition", no_wrap=True)
    table.add_column("window", no_wrap=True)
    table.add_column("values (firing first)", ratio=4, overflow="fold")
    for result in results:
        rule = result.rule
        table.add_row(Text(clean(rule.name), style="bold"), Text(result.status, style=STATUS_STYLE[result.status]),
                      str(rule.severity), rule.condition, rule.window_text, Text(clean(_values(result))))
    return table


def _values(result: RuleResult) -> str:
    if result.error:
        return result.error
    if not result.rows:
        return "no rows"
    rows = sorted(result.rows, key=lambda row: not row.fired)
    shown = [("FIRES " if row.fired else "") + f"{_number(row.value)}" + _dimensions(row.dimensions)
             for row in rows[:MAX_ROWS_SHOWN]]
    if len(rows) > MAX_ROWS_SHOWN:
        shown.append(f"… {len(rows) - MAX_ROWS_SHOWN} more rows")
    return "\n".join(shown)


def _dimensions(dimensions: dict[str, Any]) -> str:
    return " (" + ", ".join(f"{key}={value}" for key, value in dimensions.items()) + ")" if dimensions else ""


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def to_data(results: list[RuleResult]) -> list[dict[str, Any]]:
    """Plain data, one object per rule (the JSON output)."""
    return [{
        "rule": result.rule.name, "status": result.status, "severity": result.rule.severity,
        "condition": result.rule.condition, "window": result.rule.window_text, "error": result.error,
        "checked_at": result.checked_at.isoformat() if result.checked_at else None,
        "rows": [{"value": row.value, "fired": row.fired, "dimensions": row.dimensions} for row in result.rows],
    } for result in results]


def to_json(results: list[RuleResult]) -> str:
    return json.dumps(to_data(results), indent=2, default=str)


def to_junit(results: list[RuleResult]) -> str:
    """JUnit XML: a test case per rule; a firing rule is a failure, a rule that cannot run an error."""
    suite = ElementTree.Element("testsuite", name="tracekit alerts", tests=str(len(results)),
                                failures=str(sum(r.status == "fired" for r in results)),
                                errors=str(sum(r.status == "error" for r in results)),
                                skipped=str(sum(r.status == "disabled" for r in results)))
    for result in results:
        case = ElementTree.SubElement(suite, "testcase", classname="tracekit.alerts", name=_xml_text(result.rule.name))
        if result.status == "fired":
            failure = ElementTree.SubElement(case, "failure", type="AlertFired",
                                             message=_xml_text(f"{result.rule.condition} on "
                                                               f"{len(result.fired_rows)} row(s)"))
            failure.text = _xml_text(_values(result))
        elif result.status == "error":
            error = ElementTree.SubElement(case, "error", type="RuleError", message=_xml_text(result.error or ""))
            error.text = _xml_text(result.error or "")
        elif result.status == "disabled":
            ElementTree.SubElement(case, "skipped", message="rule disabled")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suite, encoding="unicode") + "\n"


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters even escaped: show them as visible escapes instead."""
    return clean(text)
