"""What tracekit hands to programs: the JSON shapes shared by `tracekit mcp` and the CLI's `--format json`.

Each function takes a StoreReader and returns plain JSON-ready dicts, sized for a model's context: a row and
character budget per call, a `page` entry saying what was left out and the `offset` that continues, and long values
cut with a marker naming the call that returns them whole. The MCP tools return these dicts as they are; `tracekit
replay --format json`, `tracekit dashboards show --format json` print them.

* `budget`: the limits, value cutting and paging every shape uses;
* `traces`: trace summaries, a trace's span tree, one span whole, recent errors grouped;
* `transcript`: a conversation as `tracekit replay` shows it, as data and as Markdown;
* `tables`: query results and dashboards as data;
* `catalog`: the queryable tables and views (columns, types, what each holds) and example queries.
"""
