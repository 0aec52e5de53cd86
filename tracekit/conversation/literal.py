"""Showing untrusted strings (everything that came in a span) literally and at a bounded size.

Span content is attacker-controllable: a prompt can contain Rich markup (`[bold red]`), terminal escape sequences
(`\\x1b]52;...` writes the clipboard, `\\x1b[2J` clears the screen), carriage returns that overwrite a line, or
bidirectional overrides that reorder what is shown. Everything goes through `literal()`: control characters become
visible escapes (tracekit.terminal_text.clean), and the result is a rich.text.Text, never a markup string. Large
values are cut with an explicit marker so a 5 MB prompt costs the same as a short one.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.text import Text

from tracekit.terminal_text import clean

DEFAULT_LIMIT = 4_000


def truncate(text: str, limit: int | None) -> tuple[str, int]:
    """The first `limit` characters of `text` and the full length (no cut when limit is None)."""
    if limit is None or len(text) <= limit:
        return text, len(text)
    return text[:limit], len(text)


def to_display_string(value: Any, *, pretty: bool = True) -> str:
    """A value as text: strings as they are (JSON strings pretty-printed when `pretty`), others as JSON."""
    if isinstance(value, str):
        stripped = value.strip()
        if pretty and stripped[:1] in ("{", "[") and len(stripped) < 2_000_000:
            try:
                return orjson.dumps(orjson.loads(stripped), option=orjson.OPT_INDENT_2).decode()
            except orjson.JSONDecodeError:
                return value
        return value
    try:
        option = orjson.OPT_INDENT_2 if pretty else 0
        return orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS, default=str).decode()
    except TypeError:
        return str(value)


def truncation_marker(shown: int, total: int, hint: str | None = None) -> Text:
    """The marker placed after a cut value: how much is shown and how to see the rest."""
    message = f" … truncated: showing {shown:,} of {total:,} characters"
    if hint:
        message += f", {hint}"
    return Text(message, style="bold yellow")


def literal(value: Any, *, limit: int | None = DEFAULT_LIMIT, style: str = "", pretty: bool = True,
            hint: str | None = None) -> Text:
    """`value` as a Text shown exactly as received (no markup, no escapes), cut at `limit` characters."""
    text = value if isinstance(value, str) and not pretty else to_display_string(value, pretty=pretty)
    shown, total = truncate(text, limit)
    result = Text(clean(shown), style=style)
    if total > len(shown):
        result.append_text(truncation_marker(len(shown), total, hint))
    return result
