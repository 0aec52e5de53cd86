"""A fast first pass for redaction: which texts could a RedactionPolicy change at all?

Running a policy's rules on every attribute text in Python costs 20-150 us per span. Most spans hold nothing to
mask, so texts are screened first with one RE2 regex (google-re2, in C): each rule's own regex with lookarounds
removed (RE2 has none; dropping them only widens the match), or its literal triggers, plus the secret-like key names.
It is a superset check: only the rows it flags need the policy. The collector uses it before storage and the
exporters before sending.

The regex is compiled once per policy and searched over the Arrow column's data buffer as it is, all rows at once:
one call into RE2 per batch (plus one per flagged row) with the DFA warm from earlier batches. pyarrow's
`match_substring_regex`, used before, compiled the pattern and rebuilt the DFA on every call and cost 4-5 us a
span on the bench payload; the buffer scan costs ~1.2 us (docs/performance.md).
"""

from __future__ import annotations

import bisect
import functools
import re
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import re2

from tracekit.redaction import NumberRule, PatternRule, RedactionPolicy

# Lowercase fragments of the key names the built-in secret-key rule masks. Searching a whole JSON text for them with
# `in` is a cheap superset check (a case-insensitive regex alternation over the text cost ~250 us per span).
_SECRET_KEY_HINTS = (
    "password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey", "accesstoken", "access_token",
    "access-token", "authtoken", "auth_token", "auth-token", "refreshtoken", "refresh_token", "refresh-token",
    "authorization", "cookie", "privatekey", "private_key", "private-key",
)


_RE2_SPECIAL = set("\\.^$|?*+()[]{}")


def _literal(text: str) -> str:
    """`text` as an RE2 literal."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)


def _accepted_by_re2(pattern: str) -> bool:
    try:
        re2.compile(pattern)
    except re2.error:
        return False
    return True


_SINGLE_CLASS = re.compile(r"^\(\?(<?)!(\[(?:\\.|[^\]\\])+\])\)$")


def _negated_class_guard(group: str) -> str:
    r"""RE2 has no lookarounds. A negative one over a single character class, such as (?<![\w-]), becomes a
    consuming guard, (?:^|[^\w-]), which is just as strict for a screen (only whether a text matches counts);
    any other lookaround is dropped, which only widens the match."""
    match = _SINGLE_CLASS.match(group)
    if match is None:
        return ""
    behind, char_class = match.groups()
    negated = "[" + char_class[2:] if char_class.startswith("[^") else "[^" + char_class[1:]
    return f"(?:^|{negated})" if behind else f"(?:$|{negated})"


def _strip_lookarounds(pattern: str) -> str:
    """`pattern` in a form RE2 runs: lookarounds turned into guards or dropped (see _negated_class_guard)."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), index):
            depth, in_class, cursor = 0, False, index
            while cursor < len(pattern):
                char = pattern[cursor]
                if char == "\\":
                    cursor += 2
                    continue
                if in_class:
                    in_class = char != "]"
                elif char == "[":
                    in_class = True
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                    if depth == 0:
                        break
                cursor += 1
            out.append(_negated_class_guard(pattern[index:cursor + 1]))
            index = cursor + 1
            continue
        if pattern[index] == "\\":
            out.append(pattern[index:index + 2])
            index += 2
            continue
        out.append(pattern[index])
        index += 1
    return "".join(out)


# What Python's \d, \w and \s match in a str pattern (every Unicode digit, letter, space), as RE2 class contents;
# RE2's own shorthands are ASCII only. Python's \s also takes \v, the separators \x1c-\x1f and NEL.
_UNICODE_SHORTHANDS = {"\\d": r"\p{Nd}", "\\w": r"\p{L}\p{N}_", "\\s": r"\s\x0b\x1c-\x1f\x{85}\p{Z}"}


def unicode_shorthands(pattern: str) -> str:
    r"""`pattern` with \d, \w and \s widened to what they match in Python (a card typed in fullwidth digits is a
    card to the policy: an ASCII-only screen would pass it by). Inside a negated class they stay ASCII: there the
    narrower set excludes less, which keeps the screen a superset."""
    out: list[str] = []
    index, in_class, negated, class_opening = 0, False, False, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            pair = pattern[index:index + 2]
            wide = _UNICODE_SHORTHANDS.get(pair)
            if wide is None or (in_class and negated):
                out.append(pair)
            else:
                out.append(wide if in_class else f"[{wide}]")
            class_opening = False  # a "]" after an escape closes the class
            index += 2
            continue
        if in_class:
            if char == "]" and not class_opening:
                in_class = False
            class_opening = False
        elif char == "[":
            in_class, class_opening = True, True
            negated = pattern.startswith("^", index + 1)
            if negated:
                out.append("[^")
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def rule_screen(regex: "re.Pattern[str]", *, json_text: bool = False, unicode: bool = True) -> str | None:
    """`regex` in a form RE2 runs that matches at least where `regex` does (lookarounds turned into guards or
    dropped; with `json_text`, also where the value sits inside JSON text, see json_text_form; with `unicode`, its
    \\d, \\w and \\s as wide as Python's); None when RE2 cannot run even that."""
    flags = ("i" if regex.flags & re.IGNORECASE else "") + ("s" if regex.flags & re.DOTALL else "")
    candidate: str | None = _strip_lookarounds(regex.pattern)
    if json_text:
        candidate = json_text_form(candidate)
        if candidate is None:
            return None
    if unicode:
        candidate = unicode_shorthands(candidate)
    if flags:
        candidate = f"(?{flags}){candidate}"
    return candidate if _accepted_by_re2(candidate) else None


# In JSON text a value's whitespace is escaped (a newline is the two characters \n, other control characters
# \u00XX) and its start and end sit next to a quote. Screens run on JSON text, so these stand in for \s, ^ and $.
_JSON_SPACE = r'(?:\s|\\[bfnrt]|\\u00[0-9a-fA-F]{2})'
_JSON_START = '(?:^|")'
_JSON_END = '(?:$|")'


def json_text_form(pattern: str) -> str | None:
    r"""An RE2 `pattern` written for a string value, widened to match where the value appears inside JSON text:
    \s also matches JSON's escapes, ^ and $ (and \A, \Z) also match next to a quote. None when a character class
    holds \s (a value's whitespace is two characters in JSON; no class can stand for that)."""
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            pair = pattern[index:index + 2]
            if pair == "\\s" and in_class:
                negated_class = "".join(out).rsplit("[", 1)[-1].startswith("^")
                if not negated_class:
                    return None
                out.append(pair)  # excluding whitespace from a negated class: JSON's escapes are excluded by nothing
            elif pair == "\\s":
                out.append(_JSON_SPACE)
            elif pair == "\\A" and not in_class:
                out.append(_JSON_START)
            elif pair in ("\\Z", "\\z") and not in_class:  # Python's end of text is \Z, RE2's \z
                out.append(_JSON_END)
            else:
                out.append(pair)
            index += 2
            continue
        if in_class:
            if char == "]" and not out[-1].endswith("[") and not "".join(out).endswith("[^"):
                in_class = False
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == "^":
            out.append(_JSON_START)
        elif char == "$":
            out.append(_JSON_END)
        else:
            out.append(char)
        index += 1
    return "".join(out)


def screening_pattern(policy: RedactionPolicy) -> str | None:
    """One RE2 regex matching (at least) every text the policy could change; None when no such regex exists.

    Each rule contributes its own regex with lookarounds removed (a wider match, so still a superset), or, when RE2
    cannot run that, its literal triggers.
    """
    if policy.secret_keys or policy.json_paths:
        return None  # key globs and JSON paths depend on structure, not on text
    parts: list[str] = []
    for rule in policy.rules:
        regexes = [rule._CARD, rule._PHONE] if isinstance(rule, NumberRule) else [getattr(rule, "regex", None)]
        for regex in regexes:
            screen = rule_screen(regex, json_text=True) if regex is not None else None
            if screen is None and isinstance(rule, PatternRule) and rule.triggers:
                literals = "|".join(_literal(trigger) for trigger in rule.triggers)
                screen = f"(?i:{literals})" if rule.fold else literals
            if screen is None:
                return None  # a rule neither RE2 nor its triggers can screen: every row goes through the policy
            parts.append(screen)
    if policy.builtin_key_rule:
        parts.append("(?i:" + "|".join(_literal(hint) for hint in _SECRET_KEY_HINTS) + ")")
    return "|".join(f"(?:{part})" for part in parts) if parts else None


# A row of the Arrow data buffer is searched together with its neighbours. That is exact for the screen when each
# row starts and ends with a character that is neither a word character nor "-" or "+" (what the rules' boundary
# guards test), as every JSON object, array and string does: a guard sees the same kind of character before or after
# a row as at the start or end of a text. A match running across two rows only flags a row too many (the policy
# then checks it exactly). Other rows (a log body that is a bare number) are searched one by one.
_SAFE_FIRST = frozenset(b'{["')
_SAFE_LAST = frozenset(b'}]"')

# Big enough that RE2's DFA for the whole screen stays in memory instead of falling back to the slower NFA.
_RE2_MAX_MEM = 64 << 20


def flag_rows(policy: RedactionPolicy, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[int]:
    """Indices of the texts the policy could change (a superset; nulls never); every index when no screen exists."""
    screen = compiled_screen(policy)
    if screen is None:
        return list(range(len(texts)))
    if isinstance(texts, pa.ChunkedArray):
        flagged: list[int] = []
        base = 0
        for chunk in texts.chunks:
            flagged.extend(base + row for row in _flag_arrow(screen, chunk))
            base += len(chunk)
        return flagged
    if isinstance(texts, pa.Array):
        return _flag_arrow(screen, texts)
    return _flag_texts(screen, texts)


def _flag_arrow(screen: "re2._Regexp", array: pa.Array) -> list[int]:
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return _flag_texts(screen, array.to_pylist())
    if len(array) == 0 or array.null_count == len(array):
        return []
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = memoryview(offsets_buffer).cast("q" if pa.types.is_large_string(array.type) else "i")
    offsets = offsets[array.offset:array.offset + len(array) + 1]
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    if not _safe_boundaries(array, data, offsets):
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
    encoded = [text.encode() if text else b"" for text in texts]
    if all(not blob or (blob[0] in _SAFE_FIRST and blob[-1] in _SAFE_LAST) for blob in encoded):
        offsets = [0]
        for blob in encoded:
            offsets.append(offsets[-1] + len(blob))
        return _search_rows(screen, memoryview(b"".join(encoded)), offsets)
    return [row for row, blob in enumerate(encoded) if blob and screen.search(blob) is not None]


@functools.lru_cache(maxsize=8)
def cached_screening_pattern(policy: RedactionPolicy) -> str | None:
    """screening_pattern(), computed once per policy object (checking each rule with RE2 takes a few ms)."""
    return screening_pattern(policy)


@functools.lru_cache(maxsize=8)
def compiled_screen(policy: RedactionPolicy) -> "re2._Regexp | None":
    """The policy's screening pattern compiled for byte texts (UTF-8), once per policy object; None when none exists."""
    pattern = cached_screening_pattern(policy)
    if pattern is None:
        return None
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    return re2.compile(pattern.encode(), options)
