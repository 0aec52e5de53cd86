"""Alert rules as an Azure Resource Manager template: one `Microsoft.Insights/scheduledQueryRules` (LogAlert)
resource per rule, scoped to an Application Insights component given as a template parameter.

The rule's query goes in unchanged, with `value` as the measure column and every other text column of its result
as a dimension, so Azure fires per row just as `tracekit alerts check` does (numeric helper columns would split
the alert by every distinct count, so they are not dimensions). Azure has no "not equal" operator: a `!=`
rule is exported as its query extended with `value = iff(value != threshold, 1, 0)` and `GreaterThan 0`.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from tracekit.alerts.rules import AlertRule
from tracekit.durations import iso8601

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
API_VERSION = "2023-12-01"
ARM_OPERATORS = {">": "GreaterThan", ">=": "GreaterThanOrEqual", "<": "LessThan", "<=": "LessThanOrEqual",
                 "==": "Equal"}
# One row per dimension combination: the per-row value is both the maximum and the minimum of its group.
_AGGREGATION = {">": "Maximum", ">=": "Maximum", "<": "Minimum", "<=": "Minimum", "==": "Maximum"}


def to_arm_template(rules: list[AlertRule], columns_of: Callable[[AlertRule], list[str]]) -> dict[str, Any]:
    """The template; `columns_of(rule)` gives the text columns the rule's query returns (its dimensions)."""
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "appInsightsResourceId": {"type": "string", "metadata": {
                "description": "Resource id of the Application Insights component the rules query"}},
            "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
            "actionGroupIds": {"type": "array", "defaultValue": [], "metadata": {
                "description": "Action groups notified when a rule fires"}},
        },
        "resources": [_resource(rule, columns_of(rule)) for rule in rules],
    }


def _resource(rule: AlertRule, columns: list[str]) -> dict[str, Any]:
    query, operator, threshold = rule.query, rule.operator, rule.threshold
    if operator == "!=":
        query = f"{query}\n| extend value = iff(value != {threshold:g}, 1, 0)"
        operator, threshold = ">", 0.0
    return {
        "type": "Microsoft.Insights/scheduledQueryRules",
        "apiVersion": API_VERSION,
        "name": resource_name(rule.name),
        "location": "[parameters('location')]",
        "kind": "LogAlert",
        "properties": {
            "displayName": rule.name,
            "description": rule.description,
            "severity": rule.severity,
            "enabled": rule.enabled,
            "scopes": ["[parameters('appInsightsResourceId')]"],
            "evaluationFrequency": iso8601(rule.frequency),
            "windowSize": iso8601(rule.window),
            "criteria": {"allOf": [{
                "query": query,
                "timeAggregation": _AGGREGATION[operator],
                "metricMeasureColumn": "value",
                "operator": ARM_OPERATORS[operator],
                "threshold": threshold,
                "dimensions": [{"name": column, "operator": "Include", "values": ["*"]}
                               for column in columns if column != "value"],
                "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
            }]},
            "autoMitigate": True,
            "actions": {"actionGroups": "[parameters('actionGroupIds')]"},
        },
    }


def resource_name(name: str) -> str:
    """A resource name Azure accepts (no <>*%&:\\?+/ and no trailing dot or space), readable as the rule's name."""
    dashed = re.sub(r"[\s<>*%&:\\?+/#]+", "-", name)
    return re.sub(r"-{2,}", "-", dashed).strip(" .-")[:260] or "tracekit-alert"
