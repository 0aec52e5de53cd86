"""Running alert rules over the store: each rule's KQL over its window, and the rows whose `value` fires it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tracekit.alerts.rules import AlertRule
from tracekit.errors import QueryError
from tracekit.store.reader import StoreReader


@dataclass
class Row:
    """One result row: its value and its dimensions (every other column), and whether it fires the rule."""

    value: Any
    dimensions: dict[str, Any]
    fired: bool


@dataclass
class RuleResult:
    """What a rule found: `status` is fired, ok, error (the query cannot run) or disabled."""

    rule: AlertRule
    status: str
    rows: list[Row] = field(default_factory=list)
    error: str | None = None
    checked_at: dt.datetime | None = None

    @property
    def fired_rows(self) -> list[Row]:
        return [row for row in self.rows if row.fired]


def check_rule(reader: StoreReader, rule: AlertRule, *, now: dt.datetime | None = None) -> RuleResult:
    """Run `rule` over the last `rule.window` (before `now`, an aware datetime; default: now) of the store."""
    from tracekit.query.kql import run_kql

    checked_at = now or dt.datetime.now(dt.timezone.utc)
    if not rule.enabled:
        return RuleResult(rule, "disabled", checked_at=checked_at)
    try:
        table = run_kql(reader, rule.query, since=rule.window, now=now)
    except QueryError as error:
        return RuleResult(rule, "error", error=str(error), checked_at=checked_at)
    if "value" not in table.column_names:
        return RuleResult(rule, "error", checked_at=checked_at, error=(
            "the query returns no `value` column (it has: " + ", ".join(table.column_names) + "); "
            "name the measured column value, e.g. `| summarize value = count() by ...`"))
    rows = []
    for record in table.to_pylist():
        value = record.pop("value")
        rows.append(Row(value=value, dimensions=record, fired=rule.fires_on(value)))
    return RuleResult(rule, "fired" if any(row.fired for row in rows) else "ok", rows, checked_at=checked_at)


def check_rules(reader: StoreReader, rules: list[AlertRule], *, now: dt.datetime | None = None) -> list[RuleResult]:
    """Every rule, in file order."""
    return [check_rule(reader, rule, now=now) for rule in rules]


def exit_status(results: list[RuleResult]) -> int:
    """2 when a rule cannot run, else 1 when any fires, else 0 (`tracekit alerts check`)."""
    if any(result.status == "error" for result in results):
        return 2
    return 1 if any(result.status == "fired" for result in results) else 0
