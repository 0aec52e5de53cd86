"""Getting stored telemetry out of the store: to Azure Monitor, to an OTLP endpoint, to OTLP JSON files.

One page model serves every destination: the runner lists the selection after the cursor, reads it page by page as
store rows (`rows.RowPage`, redacted as read) and hands each page to a sender, which adapts it on a prefetch thread
and sends it:

    selection -> pages of rows (rows, redacted by selection.StoreSource.read) -> sender.prepare -> sender.send -> cursor
        Azure Monitor (azure):  rows -> SDK spans and log records (rebuild) -> limits -> envelopes (checked against
                                the real exporter) -> the real exporters' client
        OTLP (otlp):            rows -> protobuf encoded directly (otlp_encode) -> gRPC / HTTP
        OTLP JSON files:        rows -> protobuf (otlp_encode) -> JSON lines (otlp_json), by runner.run_file_export

* `selection` turns `--trace/--conversation/--since/--until/--where` into SQL over the store and lists the selected
  spans in the store's own order (ingest_seq, trace_id, span_id), the order the export cursor follows.
* `rows` reads a page of those spans as rows: columns, parsed attributes, events, links, log records, resources.
* `runner` drives the pages through a sender and the cursor, and reports progress as events; the `tracekit export`
  command draws the progress bar and prints the summary.
* `limits` applies Application Insights' limits; `cursor` keeps what was sent so a re-run resumes. Reading OTLP
  JSON lines files back into a store is an import: tracekit.file_import.

See docs/export.md for the decisions behind each part.
"""
