"""`tracekit alerts`: alert rules in Azure Monitor's log search alert shape, checked locally or exported to Azure."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tracekit.commands._options import add_db_argument

HELP = "check alert rules over the store (a CI gate), or export them as Azure Monitor alert rules"

DESCRIPTION = """\
Alert rules are KQL queries over the Application Insights-shaped tables with a condition on their `value`
column, written once in a TOML file (one [[alert]] table per rule: name, description, severity 0-4, query,
operator > >= < <= == !=, threshold, window, frequency). A rule fires for each result row whose value meets the
condition; the other columns are that row's dimensions. Without --rules, the default agent rules are used
(success rate, p95 latency, token spikes, evaluation scores: see `tracekit alerts show-defaults`).

  check    run every rule over the last `window` of the store; report each rule with its values
  export   print an ARM template with one Microsoft.Insights/scheduledQueryRules resource per rule, so the same
           rules deploy to Azure Monitor against Application Insights
  show-defaults  print the default rule file (a starting point for your own)

`tracekit collect --alerts FILE` evaluates the rules on their frequency while it runs; the TUI shows what fires.
"""

CHECK_EPILOG = """\
exit status: 0 no rule fires, 1 at least one rule fires, 2 a rule cannot run (the report names it, and the line
and column of a KQL error) or the rule file is invalid.

examples:
  tracekit alerts check
  tracekit alerts check --rules alerts.toml --format junit > alerts.xml   # after an evaluation run in CI
"""

EXPORT_EPILOG = """\
examples:
  tracekit alerts export --rules alerts.toml --arm > alerts.json
  az deployment group create -g my-rg --template-file alerts.json \\
      --parameters appInsightsResourceId=/subscriptions/.../components/my-app
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tracekit alerts` to the CLI."""
    parser = subparsers.add_parser("alerts", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = actions.add_parser("check", help="run the rules over the store; exit 1 when any fires",
                               epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_rules_argument(check)
    add_db_argument(check)
    check.add_argument("--format", choices=("table", "json", "junit"), default="table",
                       help="table (default), json, or junit XML for CI test reports")
    check.set_defaults(handler=run_check)

    export = actions.add_parser("export", help="print the rules as an Azure Resource Manager template",
                                epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_rules_argument(export)
    export.add_argument("--arm", action="store_true", required=True,
                        help="ARM template of Microsoft.Insights/scheduledQueryRules (the only export format)")
    add_db_argument(export, help="accepted for symmetry; the template does not depend on a store")
    export.set_defaults(handler=run_export)

    defaults = actions.add_parser("show-defaults", help="print the default rule file")
    add_db_argument(defaults, help="accepted for symmetry; the rule file does not depend on a store")
    defaults.set_defaults(handler=run_show_defaults)


def _add_rules_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", metavar="FILE", default=None,
                        help="the rule file (default: the built-in agent rules)")


def load(args: argparse.Namespace):
    """The rules of --rules, or the default pack."""
    from tracekit.alerts.rules import load_rules, parse_rules

    if args.rules:
        return load_rules(args.rules)
    import tomllib

    return parse_rules(tomllib.loads(default_rules_text()), "default agent rules")


def default_rules_text() -> str:
    from importlib import resources

    return resources.files("tracekit.dashboards").joinpath("alert_rules/agents.toml").read_text(encoding="utf-8")


def run_check(args: argparse.Namespace) -> int:
    """Check every rule over the store and report."""
    from tracekit.alerts import check_rules
    from tracekit.alerts.check import exit_status
    from tracekit.alerts.report import to_json, to_junit, to_table
    from tracekit.store.reader import open_reader

    rules = load(args)
    reader = open_reader(args.db)
    try:
        results = check_rules(reader, rules)
    finally:
        reader.close()
    if args.format == "json":
        sys.stdout.write(to_json(results) + "\n")
    elif args.format == "junit":
        sys.stdout.write(to_junit(results))
    else:
        from rich.console import Console

        console = Console(highlight=False)
        console.print(to_table(results))
        fired = sum(result.status == "fired" for result in results)
        errors = [result.rule.name for result in results if result.status == "error"]
        console.print(f"{len(results)} rule(s): {fired} firing"
                      + (f", {len(errors)} cannot run: {', '.join(errors)}" if errors else ""), markup=False)
    for result in results:
        if result.status == "error":
            print(f"tracekit alerts: rule {result.rule.name!r} cannot run: {result.error}", file=sys.stderr)
    return exit_status(results)


def run_export(args: argparse.Namespace) -> int:
    """Print the ARM template; a rule whose query does not compile stops the export with its name and reason."""
    from tracekit.alerts.arm import to_arm_template

    rules = load(args)
    with _empty_store_reader() as columns_of:
        template = to_arm_template(rules, columns_of)
    json.dump(template, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def run_show_defaults(args: argparse.Namespace) -> int:
    sys.stdout.write(default_rules_text())
    return 0


class _empty_store_reader:
    """The result columns of a rule's query, found by running it over an empty store (so no data is needed)."""

    def __enter__(self):
        from tracekit.store.database import open_store
        from tracekit.store.reader import open_reader

        self._directory = tempfile.TemporaryDirectory()
        path = Path(self._directory.name) / "schema.duckdb"
        open_store(path).close()
        self._reader = open_reader(path)
        return self.columns_of

    def columns_of(self, rule) -> list[str]:
        """The text columns of the rule's result: its dimensions."""
        import pyarrow as pa

        from tracekit.errors import QueryError
        from tracekit.query.kql import run_kql

        try:
            schema = run_kql(self._reader, rule.query).schema
        except QueryError as error:
            raise QueryError(f"rule {rule.name!r}: {error}") from None
        return [column.name for column in schema
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type)]

    def __exit__(self, *exc_info) -> None:
        self._reader.close()
        self._directory.cleanup()
