"""The table names a query can use, without the SQL that makes them (tracekit.query.views).

Readers ask whether a query names a view before installing any; importing the views' SQL for that would cost every
`tracekit query --sql` on the store's own tables more than its query.
"""

from __future__ import annotations

STORE_TABLES = ("spans", "span_events", "span_links", "logs", "metric_points", "resources", "tracekit_meta",
                "export_cursors")
CLASSIC_TABLES = ("requests", "dependencies", "traces", "exceptions", "customEvents", "customMetrics")
WORKSPACE_TABLES = {"AppRequests": "requests", "AppDependencies": "dependencies", "AppTraces": "traces",
                    "AppExceptions": "exceptions", "AppEvents": "customEvents", "AppMetrics": "customMetrics"}
HELPER_VIEWS = ("span_agents", "conversations")


def view_names() -> list[str]:
    """Every table name a query can use: the store's tables, the App Insights views and the helpers."""
    return ["spans", "span_events", "span_links", "logs", "metric_points", "resources", *CLASSIC_TABLES,
            *WORKSPACE_TABLES, *HELPER_VIEWS]
