"""The span details panel: identity and timing, attributes (pretty JSON, wrapped), events, links, logs, resource.

Values arrive cut to a preview length by the query; a cut value ends with an explicit marker and `e` loads it
(up to a larger bound) without ever blocking the UI.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tracekit.call_metrics import call_metrics, describe
from tracekit.conversation.literal import literal, to_display_string, truncation_marker
from tracekit.cost import PRICED_OPERATIONS, format_cost
from tracekit.terminal_text import clean
from tracekit.tui.data import AttributeValue, SpanDetails, SpanRow
from tracekit.tui.format import clock, format_duration

EXPAND_HINT = "press e to expand"


def _section(title: str, count: int | None = None) -> Text:
    label = f"── {title}" + (f" ({count})" if count is not None else "") + " "
    return Text(label + "─" * max(0, 60 - len(label)), style="bold blue")


def render_value(item: AttributeValue, *, hint: str | None = EXPAND_HINT) -> Text:
    """An attribute value: JSON pretty-printed when complete, otherwise literal text with a truncation marker."""
    if item.truncated:
        text = Text(clean(item.value))
        text.append_text(truncation_marker(len(item.value), item.size, hint))
        return text
    if item.json_type in ("OBJECT", "ARRAY"):
        return literal(item.value, limit=None)
    if item.json_type == "VARCHAR":
        return literal(item.value, limit=None, pretty=True)
    return literal(item.value, limit=None, pretty=False, style="green")


def _key_values(items: list[AttributeValue], hint: str | None) -> list[Text]:
    lines: list[Text] = []
    for item in items:
        line = Text()
        line.append_text(literal(item.key, limit=300, pretty=False, style="bold cyan"))
        value = render_value(item, hint=hint)
        if "\n" in value.plain or len(value.plain) > 60:
            line.append("\n")
            indented = Text("  ")
            indented.append_text(value)
            line.append_text(indented)
        else:
            line.append(" = ", style="dim")
            line.append_text(value)
        lines.append(line)
    return lines


def _json_cell(text: str, size: int, hint: str | None) -> Text:
    if size > len(text):
        result = Text(clean(text))
        result.append_text(truncation_marker(len(text), size, hint))
        return result
    return literal(text, limit=None)


def _model_call_line(details: SpanDetails) -> Text | None:
    """Tokens (reasoning and cache parts), streaming and time to first chunk, under whichever names the span used;
    the replay's turn header says the same (tracekit.call_metrics)."""
    span = details.span
    metrics = call_metrics(details.attribute_map(), start_ns=span.start_ns, duration_ns=span.duration_ns,
                           input_tokens=span.input_tokens, output_tokens=span.output_tokens)
    extra = (metrics.reasoning_tokens, metrics.cache_read_tokens, metrics.cache_write_tokens, metrics.stream,
             metrics.time_to_first_chunk_s)
    if all(value is None for value in extra) and span.operation_name not in PRICED_OPERATIONS:
        return None
    pieces = describe(metrics)
    if not pieces:
        return None
    line = Text("model call  ", style="bold")
    line.append(" · ".join(pieces))
    return line


def render_details(details: SpanDetails) -> Group:
    """Everything about one span, as one renderable built only from literal Text."""
    span = details.span
    header = Text()
    header.append_text(literal(span.name, limit=500, pretty=False, style="bold"))
    header.append(f"  {span.kind}", style="dim")
    status_style = "bold red" if span.status_code == "ERROR" else "green" if span.status_code == "OK" else "dim"
    header.append(f"  {span.status_code}", style=status_style)
    if span.status_message:
        header.append(": ", style=status_style)
        header.append_text(literal(span.status_message, limit=500, pretty=False, style="red"))
    identity = Text(f"trace {span.trace_id}  span {span.span_id}  parent {span.parent_span_id or '—'}",
                    style="dim")
    timing = Text(f"start {clock(span.start_ns)}  duration {format_duration(span.duration_ns)}", style="dim")
    if span.service_name:
        timing.append("  service ", style="dim")
        timing.append_text(literal(span.service_name, limit=200, pretty=False))
    parts: list[Text] = [header, identity, timing]
    usage = _model_call_line(details)
    if usage is not None:
        parts.append(usage)
    if details.price is not None:
        price = details.price
        line = Text(f"cost {format_cost(price.total_usd)}", style="bold")
        line.append(f"  (input {format_cost(price.input_usd)}, output {format_cost(price.output_usd)}; "
                    f"{price.provider} {price.model}: {price.rates})", style="dim")
        parts.append(line)
    elif span.operation_name in PRICED_OPERATIONS and (span.input_tokens or span.output_tokens):
        parts.append(Text("cost —  (no known price for this model)", style="dim"))
    parts.append(Text(""))
    if details.findings:
        parts.append(_section("conventions", len(details.findings)))
        for finding in details.findings:
            line = Text(f"{finding.rule}  ", style="yellow")
            line.append_text(literal(finding.key, limit=300, pretty=False, style="bold"))
            line.append("  ")
            line.append_text(literal(finding.message, limit=500, pretty=False))
            parts.append(line)
    parts.append(_section("attributes", len(details.attributes)))
    parts.extend(_key_values(details.attributes, EXPAND_HINT))
    if span.dropped_attributes_count:
        dropped = span.dropped_attributes_count
        parts.append(Text(f"{dropped} more dropped by an attribute count limit (the sender's or the collector's)",
                          style="yellow"))
    if details.events:
        parts.append(_section("events", len(details.events)))
        for event in details.events:
            line = Text(f"{clock(event['time_ns'])}  ", style="dim")
            line.append_text(literal(event["name"], limit=300, pretty=False, style="bold yellow"))
            line.append("\n  ")
            line.append_text(_json_cell(event["attributes"], event["size"], None))
            parts.append(line)
    if details.logs:
        parts.append(_section("log records", len(details.logs)))
        for record in details.logs:
            line = Text(f"{clock(record['time_ns'])}  ", style="dim")
            line.append_text(literal(record["event_name"] or record["severity_text"] or "log", limit=300,
                                     pretty=False, style="bold yellow"))
            if record["body"] is not None:
                line.append("\n  body ")
                line.append_text(_json_cell(record["body"], record["size"], None))
            line.append("\n  attributes ")
            line.append_text(literal(record["attributes"], limit=2000))
            parts.append(line)
    if details.links:
        parts.append(_section("links", len(details.links)))
        for link in details.links:
            line = Text(f"trace {link['linked_trace_id']}  span {link['linked_span_id']}\n  ", style="dim")
            line.append_text(literal(link["attributes"], limit=2000))
            parts.append(line)
    if details.resource:
        parts.append(_section("resource", len(details.resource)))
        parts.extend(_key_values(details.resource, None))
    return Group(*parts)


class SpanDetailsView(VerticalScroll):
    """A scrollable panel showing one span's details."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.details: SpanDetails | None = None

    def compose(self):
        yield Static(Text("select a span", style="dim"), id="details-body")

    def show(self, details: SpanDetails | None, message: str | None = None) -> None:
        """Show a span's details (or a message when there is none)."""
        self.details = details
        body = self.query_one("#details-body", Static)
        if details is None:
            body.update(Text(message or "select a span", style="dim"))
        else:
            body.update(render_details(details))
        self.scroll_home(animate=False)

    def replace_attributes(self, span: SpanRow, expanded: list[AttributeValue]) -> None:
        """Swap in fully loaded values of `span`'s attributes that were cut, and redraw (if it is still shown)."""
        if self.details is None or self.details.span != span:
            return
        by_key = {item.key: item for item in expanded}
        self.details.attributes = [by_key.get(item.key, item) for item in self.details.attributes]
        self.query_one("#details-body", Static).update(render_details(self.details))

    def truncated_keys(self) -> list[str]:
        """Attribute keys whose values were cut."""
        if self.details is None:
            return []
        return [item.key for item in self.details.attributes if item.truncated]


__all__ = ["SpanDetailsView", "render_details", "render_value", "to_display_string"]
