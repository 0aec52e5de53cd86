"""Getting stored telemetry out of the store: to Azure Monitor, to an OTLP endpoint, to OTLP JSON files, and back in.

Two paths share the selection, the cursor and the runner:

    Azure Monitor:        selection -> store rows, page by page -> rebuilt SDK spans and log records -> limits ->
                          envelopes (`envelopes`, checked against the real exporter) -> the real exporters' client
    OTLP, OTLP JSON files: selection -> store rows, page by page (`rows`) -> protobuf encoded directly
                          (`otlp_encode`) -> gRPC / HTTP / a JSON lines file

* `selection` turns `--trace/--conversation/--since/--until/--where` into SQL over the store and lists the selected
  spans in the store's own order (ingest_seq, trace_id, span_id), the order the export cursor follows.
* `rebuild` turns rows back into `opentelemetry.sdk` ReadableSpans and ReadableLogRecords, faithfully (ids, parents,
  kinds, status, events, links, resource, scope), for the Azure Monitor exporters, which take SDK objects.
* `rows` and `otlp_encode` build OTLP requests straight from rows (4-5x less CPU than SDK objects + the SDK encoder).
* `envelopes` builds Application Insights envelopes as JSON dicts identical to the Azure exporter's (~10x less CPU),
  with the exporter as the oracle for each span shape and the fallback for shapes it does not claim.
* `azure`, `otlp` and `otlp_json` are the senders; `limits` applies Application Insights' limits before sending;
  `cursor` keeps what was sent so a re-run resumes; `runner` drives a selection through a sender with a progress bar
  and a summary. Reading OTLP JSON lines files back into a store is an import: tracekit.file_import.

See docs/export.md for the decisions behind each part.
"""
