"""The fast screen: which texts could a RedactionPolicy change at all?

Running a policy's rules on every text in Python is costly (docs/performance.md). Most spans hold nothing to mask, so
texts are screened first with one RE2 regex (google-re2, in C): each rule's own regex with lookarounds removed (RE2
has none; dropping them only widens the match), or its literal triggers, plus the secret-like key names. It is a
superset check: only the rows it flags need the policy (tracekit.redaction.columns runs it on every column).

The regex is compiled once per policy and searched over the Arrow column's data buffer as it is, all rows at once:
one call into RE2 per batch (plus one per flagged row) with the DFA warm from earlier batches. The screen is written
for JSON text (the attribute maps and bodies); plain text columns (span names, status messages) are screened as JSON
strings, each row wrapped in quotes (`quoted`), which is all the regex needs to see a row's start and end.
"""

from __future__ import annotations

import bisect
import functools
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from tracekit.redaction.policy import RedactionPolicy, compile_screen
from tracekit.redaction.rules import SECRET_KEY_NAMES


def screening_pattern(policy: RedactionPolicy) -> str | None:
    """One RE2 regex matching (at least) every text the policy could change; None when no such regex exists.

    Each rule contributes its own regex with lookarounds removed (a wider match, so still a superset), or, when RE2
    cannot run that, its literal triggers.
    """
    if policy.secret_keys or policy.json_paths:
        return None  # key globs and JSON paths depend on structure, not on text
    screens = policy.rule_screens()
    if screens is None:
        return None  # a rule neither RE2 nor its triggers can screen: every row goes through the policy
    parts = [pattern for _, pattern in screens]
    if policy.builtin_key_rule:
        # A JSON text holds its keys: any mention of a secret-like key name flags it.
        parts.append("(?i:" + "|".join(SECRET_KEY_NAMES) + ")")
    return "|".join(f"(?:{part})" for part in parts) if parts else None


# A row of the Arrow data buffer is searched together with its neighbours. That is exact for the screen when each
# row starts and ends with a character that is neither a word character nor "-" or "+" (what the rules' boundary
# guards test), as every JSON object, array and string does: a guard sees the same kind of character before or after
# a row as at the start or end of a text. A match running across two rows only flags a row too many (the policy
# then checks it exactly). Other rows (a log body that is a bare number) are searched one by one.
_SAFE_FIRST = frozenset(b'{["')
_SAFE_LAST = frozenset(b'}]"')

def flag_rows(policy: RedactionPolicy, texts: pa.Array | pa.ChunkedArray | Sequence[str | None], *,
              quoted: bool = False) -> list[int]:
    """Indices of the texts the policy could change (a superset; nulls never); every index when no screen exists.
    `quoted`: every row is known to start and end with a quote (plain texts wrapped by `quote`)."""
    screen = compiled_screen(policy)
    if screen is None:
        return list(range(len(texts)))
    if isinstance(texts, pa.ChunkedArray):
        flagged: list[int] = []
        base = 0
        for chunk in texts.chunks:
            flagged.extend(base + row for row in _flag_arrow(screen, chunk, quoted))
            base += len(chunk)
        return flagged
    if isinstance(texts, pa.Array):
        return _flag_arrow(screen, texts, quoted)
    return _flag_texts(screen, texts)


def _flag_arrow(screen: "re2._Regexp", array: pa.Array, quoted: bool) -> list[int]:
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return _flag_texts(screen, array.to_pylist())
    if len(array) == 0 or array.null_count == len(array):
        return []
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = memoryview(offsets_buffer).cast("q" if pa.types.is_large_string(array.type) else "i")
    offsets = offsets[array.offset:array.offset + len(array) + 1]
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    if not quoted and not _safe_boundaries(array, data, offsets):
        # Each row as a text of its own (a slice, not pos/endpos: RE2's `$` does not match at an endpos).
        return [row for row in range(len(array))
                if offsets[row] < offsets[row + 1] and array[row].is_valid
                and screen.search(data[offsets[row]:offsets[row + 1]]) is not None]
    flagged = _search_rows(screen, data, offsets)
    if array.null_count:
        flagged = [row for row in flagged if array[row].is_valid]
    return flagged


def _safe_boundaries(array: pa.Array, data: memoryview, offsets: Sequence[int]) -> bool:
    """Whether every non-empty row starts and ends with a character the buffer scan may put next to another row."""
    # Columns of JSON objects pass the two cheap kernel checks (nulls are skipped); anything else is looked at row by
    # row (pyarrow's per-row string slicing kernels cost more than the scan itself).
    if pc.all(pc.starts_with(array, "{")).as_py() is not False and pc.all(pc.ends_with(array, "}")).as_py() is not False:
        return True
    return all(offsets[row] == offsets[row + 1]
               or (data[offsets[row]] in _SAFE_FIRST and data[offsets[row + 1] - 1] in _SAFE_LAST)
               for row in range(len(array)))


def rows_matching(regex: "re2._Regexp", column: pa.ChunkedArray) -> list[int]:
    """Rows of a string column where `regex` (compiled for bytes) may match: each chunk's data buffer searched as it
    is, one RE2 call per hit. A superset: a match that runs from one row into the next flags the first."""
    rows: list[int] = []
    base = 0
    for chunk in column.chunks:
        if len(chunk) and chunk.null_count < len(chunk):
            _, offsets_buffer, data_buffer = chunk.buffers()
            offsets = memoryview(offsets_buffer).cast("q" if pa.types.is_large_string(chunk.type) else "i")
            rows.extend(base + row for row in _search_rows(regex, memoryview(data_buffer),
                                                           offsets[chunk.offset:chunk.offset + len(chunk) + 1]))
        base += len(chunk)
    return rows


def _search_rows(screen: "re2._Regexp", data: memoryview, offsets: Sequence[int]) -> list[int]:
    """Rows (between consecutive `offsets` into `data`) where the screen matches, found with one search per hit."""
    flagged = []
    position, end = offsets[0], offsets[-1]
    while position < end:
        match = screen.search(data, position, end)
        if match is None:
            break
        row = bisect.bisect_right(offsets, match.start()) - 1
        while offsets[row + 1] == offsets[row]:  # an empty row cannot hold the match's first byte
            row += 1
        flagged.append(row)
        position = offsets[row + 1]
    return flagged


def _flag_texts(screen: "re2._Regexp", texts: Sequence[str | None]) -> list[int]:
    encoded = [text.encode("utf-8", "surrogatepass") if isinstance(text, str) else b"" for text in texts]
    if all(not blob or (blob[0] in _SAFE_FIRST and blob[-1] in _SAFE_LAST) for blob in encoded):
        offsets = [0]
        for blob in encoded:
            offsets.append(offsets[-1] + len(blob))
        return _search_rows(screen, memoryview(b"".join(encoded)), offsets)
    return [row for row, blob in enumerate(encoded) if blob and screen.search(blob) is not None]


def quote(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A plain text column as the screen reads it: each row in quotes, so it begins and ends like a JSON string
    (no escaping needed: the screen's JSON forms only widen the rules, so raw text matches at least as much)."""
    if not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    # Two slice replacements (a quote before the first and after the last character) cost half of one
    # binary_join_element_wise.
    return pc.binary_replace_slice(pc.binary_replace_slice(column, 0, 0, '"'), _END, _END, '"')


_END = 2**31 - 1  # a slice position past the end of any row


@functools.lru_cache(maxsize=8)
def compiled_screen(policy: RedactionPolicy) -> "re2._Regexp | None":
    """The policy's screening pattern compiled for byte texts (UTF-8), once per policy object (checking each rule
    with RE2 takes a few ms); None when none exists."""
    pattern = screening_pattern(policy)
    return None if pattern is None else compile_screen(pattern)
