"""Reading a user's TOML file (alert rules, evaluation rules) with one-line errors instead of tracebacks."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tracekit.errors import TracekitError


def read_toml(path: str | Path, error: type[TracekitError]) -> dict[str, Any]:
    """The file's data; `error` (naming the file and the reason) when it cannot be read or is not valid TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as failure:
        raise error(f"cannot read {path}: {failure.strerror or failure}") from None
    except tomllib.TOMLDecodeError as failure:
        raise error(f"{path}: not valid TOML: {failure}") from None
