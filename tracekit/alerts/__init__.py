"""Alert rules in Azure Monitor's log search alert shape, run over the local store and exported to Azure.

    rules.py   the TOML rule file: one [[alert]] table per rule, checked with errors that name the rule
    check.py   a rule run over the store: its KQL over the last `window`, each row's `value` against the condition
    arm.py     rules -> an ARM template of Microsoft.Insights/scheduledQueryRules resources
    report.py  check results as a table, JSON or JUnit XML (a CI quality gate)

The same rule text runs in both places: locally the query reads the Application Insights-shaped views limited to
the window; in Azure, the scheduled query rule runs it over Application Insights with the same window.
"""

from tracekit.alerts.check import RuleResult, check_rules
from tracekit.alerts.rules import AlertRule, load_rules

__all__ = ["AlertRule", "RuleResult", "check_rules", "load_rules"]
