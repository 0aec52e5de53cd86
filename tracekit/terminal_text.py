"""Text from spans made safe to show on a terminal: control characters become visible escapes.

Span names, attribute values, messages and file contents are attacker-controllable. Written raw to a terminal,
`ESC ] 0 ; ... BEL` retitles the window, `ESC ] 52` writes the clipboard, `ESC [ 2 J` clears the screen, a carriage
return overwrites the line, C1 controls (U+0080-U+009F) act as 8-bit escapes on some terminals, and bidi overrides
reorder what is shown. Every piece of data tracekit prints for people goes through `clean()` (the TUI and the
replay through `tracekit.conversation.literal`, which uses it). Machine formats (CSV, JSON) stay exact in files and
pipes; on a terminal they are escaped too (`clean()` for CSV, `clean_json()` for JSON, which stays valid JSON).
"""

from __future__ import annotations

import logging
import re
from typing import IO, Any

# C0 controls except tab and newline, DEL, C1 controls, and the Unicode bidi marks / overrides / isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What JSON text can still carry raw (json.dumps already escapes C0 controls inside strings).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """`text` with every control character and bidi override replaced by a visible escape (`ESC` -> `\\x1b`);
    newlines are kept and tabs become four spaces."""
    return _UNSAFE.sub(_visible, text).replace("\t", "    ")


def clean_json(text: str) -> str:
    """JSON text with the characters a terminal would act on written as JSON escapes (the data is unchanged)."""
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def is_terminal(stream: IO[Any]) -> bool:
    """Whether `stream` is a terminal (where raw machine formats would be interpreted)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


class CleanFormatter(logging.Formatter):
    """Log lines for a terminal: messages often quote what a sender sent."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))


class TerminalJsonLines:
    """A binary stream of JSON lines bound for a terminal: each write (whole lines) is escaped with `clean_json`."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        self._stream.write(clean_json(data.decode("utf-8", errors="replace")).encode())
        return len(data)

    def flush(self) -> None:
        self._stream.flush()
