"""Alert rule files: TOML with one `[[alert]]` table per rule.

    [[alert]]
    name = "failed tool calls"
    description = "a tool call failed"
    severity = 2                 # 0 critical .. 4 verbose, as in Azure Monitor
    query = 'dependencies | where success == false | summarize value = count() by tool = tostring(...)'
    operator = ">"               # > >= < <= == !=
    threshold = 0
    window = "1h"                # the query runs over the last window
    frequency = "5m"             # how often the collector evaluates it

A rule fires for each row of its query's result whose `value` meets the condition; the other columns of that row
are its dimensions. Unknown keys are errors (a misspelt `treshold` must not silently disable a rule).
"""

from __future__ import annotations

import datetime as dt
import operator as op
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tracekit.durations import DurationError, parse_duration
from tracekit.errors import TracekitError
from tracekit.toml_files import read_toml

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le, "==": op.eq, "!=": op.ne,
}
SEVERITIES = {0: "critical", 1: "error", 2: "warning", 3: "informational", 4: "verbose"}
_KEYS = {"name", "description", "severity", "query", "operator", "threshold", "window", "frequency", "enabled"}


class RuleError(TracekitError):
    """A rule file or a rule that cannot be used as written."""


@dataclass(frozen=True)
class AlertRule:
    """One alert rule."""

    name: str
    query: str
    operator: str
    threshold: float
    window: dt.timedelta
    frequency: dt.timedelta
    severity: int = 3
    description: str = ""
    enabled: bool = True
    window_text: str = "1h"
    frequency_text: str = "5m"

    def fires_on(self, value: Any) -> bool:
        """Whether a result row with this `value` meets the condition (NULL never does)."""
        if value is None:
            return False
        try:
            return OPERATORS[self.operator](float(value), self.threshold)
        except (TypeError, ValueError):
            return False

    @property
    def condition(self) -> str:
        return f"value {self.operator} {self.threshold:g}"


def load_rules(path: str | Path) -> list[AlertRule]:
    """Read and check a rule file; RuleError names the rule and the key at fault."""
    return parse_rules(read_toml(path, RuleError), str(path))


def parse_rules(data: dict[str, Any], source: str = "rules") -> list[AlertRule]:
    """The rules of already-parsed TOML data."""
    raw_rules = data.get("alert")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError(f"{source}: no [[alert]] tables")
    rules: list[AlertRule] = []
    for index, raw in enumerate(raw_rules, start=1):
        rule = _parse_rule(raw, f"{source}: alert #{index}")
        if any(existing.name == rule.name for existing in rules):
            raise RuleError(f"{source}: two rules are named {rule.name!r}")
        rules.append(rule)
    return rules


def _parse_rule(raw: dict[str, Any], where: str) -> AlertRule:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError(f"{where}: `name` is missing")
    where = f"{where.split(': ')[0]}: rule {name!r}"
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RuleError(f"{where}: `query` is missing")
    operator = raw.get("operator", ">")
    if operator not in OPERATORS:
        raise RuleError(f"{where}: operator {operator!r} is not one of {' '.join(OPERATORS)}")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise RuleError(f"{where}: `threshold` must be a number")
    severity = raw.get("severity", 3)
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise RuleError(f"{where}: severity must be 0 (critical) to 4 (verbose), got {severity!r}")
    window_text, frequency_text = str(raw.get("window", "1h")), str(raw.get("frequency", "5m"))
    try:
        window = parse_duration(window_text, option="window")
        frequency = parse_duration(frequency_text, option="frequency")
    except DurationError as error:
        raise RuleError(f"{where}: {error}") from None
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}: `enabled` must be true or false")
    return AlertRule(name=name.strip(), query=query.strip(), operator=operator, threshold=float(threshold),
                     window=window, frequency=frequency, severity=severity,
                     description=str(raw.get("description", "")), enabled=enabled,
                     window_text=window_text, frequency_text=frequency_text)
