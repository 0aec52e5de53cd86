"""A dashboard as an Azure Monitor Workbook (the JSON the Workbooks gallery imports), built from the same tiles.

Every tile becomes a KQL query item on the Application Insights resource (`microsoft.insights/components`), bound to
one TimeRange parameter, so the Workbook scopes every table to the picked range exactly as `tracekit dashboards show
--since` does locally. The KQL text is the tile's text, unchanged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tracekit.dashboards import Dashboard

SCHEMA = "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json"
VISUALIZATIONS = {"number": "tiles", "bar": "barchart", "line": "timechart", "table": "table"}
_RANGES_MS = [300_000, 900_000, 1_800_000, 3_600_000, 14_400_000, 43_200_000, 86_400_000, 172_800_000,
              259_200_000, 604_800_000, 2_592_000_000]


def to_workbook(board: Dashboard) -> dict[str, Any]:
    """The Workbook JSON (as a dict) for `board`: a header, a TimeRange picker and one query item per tile."""
    default_ms = int((board.default_since or dt.timedelta(hours=24)).total_seconds() * 1000)
    items: list[dict[str, Any]] = [
        {"type": 1, "name": "header",
         "content": {"json": f"## {board.title}\n{board.description}".strip()}},
        {"type": 9, "name": "parameters",
         "content": {
             "version": "KqlParameterItem/1.0",
             "parameters": [{
                 "id": "tracekit-time-range", "version": "KqlParameterItem/1.0", "name": "TimeRange",
                 "label": "Time range", "type": 4, "isRequired": True, "value": {"durationMs": default_ms},
                 "typeSettings": {"selectableValues": [{"durationMs": ms} for ms in _RANGES_MS],
                                  "allowCustom": True},
             }],
             "style": "pills", "queryType": 0, "resourceType": "microsoft.insights/components",
         }},
    ]
    for tile in board.tiles:
        content: dict[str, Any] = {
            "version": "KqlItem/1.0",
            "query": tile.kql,
            "size": 3 if tile.chart == "number" else 0,
            "title": tile.title,
            "noDataMessage": "No data in the time range",
            "timeContextFromParameter": "TimeRange",
            "queryType": 0,
            "resourceType": "microsoft.insights/components",
            "visualization": VISUALIZATIONS[tile.chart],
        }
        if tile.chart == "number":
            content["tileSettings"] = {"showBorder": False, "titleContent": {"columnMatch": "", "formatter": 1},
                                       "leftContent": {"columnMatch": "", "formatter": 12}}
        items.append({"type": 3, "name": f"tile - {tile.id}", "content": content,
                      **({"customWidth": "50"} if tile.chart in ("number",) else {})})
    return {"version": "Notebook/1.0", "items": items, "fallbackResourceIds": [], "$schema": SCHEMA}
