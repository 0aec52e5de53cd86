"""The names of the records agents in flight send (tracekit.live) and readers look for (tracekit.store.open_spans).

Apart from tracekit.live so a reader (the TUI, `tracekit query`) gets them without importing the OpenTelemetry SDK
that the sending side subclasses.
"""

SPAN_STARTED = "tracekit.span.started"
HEARTBEAT = "tracekit.heartbeat"
ATTR_NAME = "tracekit.span.name"
ATTR_KIND = "tracekit.span.kind"
ATTR_PARENT = "tracekit.span.parent_id"
ATTR_INTERVAL = "tracekit.heartbeat.interval_s"  # how often this process promised to beat: the reader's stale window
DEFAULT_INTERVAL_S = 10.0
