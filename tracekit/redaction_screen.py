"""A fast first pass for redaction: which texts could a RedactionPolicy change at all?

Running a policy's rules on every attribute text in Python costs 20-150 us per span. Most spans hold nothing to
mask, so a whole column is screened first with one RE2 regex through pyarrow.compute (in C, about 1 us per row):
each rule's own regex with lookarounds removed (RE2 has none; dropping them only widens the match), or its literal
triggers, plus the secret-like key names. It is a superset check: only the rows it flags need the policy. The
collector uses it before storage and the exporters before sending.
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from tracekit.redaction import NumberRule, PatternRule, RedactionPolicy

# Lowercase fragments of the key names the built-in secret-key rule masks. Searching a whole JSON text for them with
# `in` is a cheap superset check (a case-insensitive regex alternation over the text cost ~250 us per span).
_SECRET_KEY_HINTS = (
    "password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey", "accesstoken", "access_token",
    "access-token", "authtoken", "auth_token", "auth-token", "refreshtoken", "refresh_token", "refresh-token",
    "authorization", "cookie", "privatekey", "private_key", "private-key",
)


SCREEN_MIN_ROWS = 32

_RE2_SPECIAL = set("\\.^$|?*+()[]{}")


def _literal(text: str) -> str:
    """`text` as an RE2 literal."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)


def _accepted_by_re2(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
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


def _rule_screen(regex: "re.Pattern[str]") -> str | None:
    flags = ("i" if regex.flags & re.IGNORECASE else "") + ("s" if regex.flags & re.DOTALL else "")
    candidate = _strip_lookarounds(regex.pattern)
    if flags:
        candidate = f"(?{flags}){candidate}"
    return candidate if _accepted_by_re2(candidate) else None


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
            screen = _rule_screen(regex) if regex is not None else None
            if screen is None and isinstance(rule, PatternRule) and rule.triggers:
                literals = "|".join(_literal(trigger) for trigger in rule.triggers)
                screen = f"(?i:{literals})" if rule.fold else literals
            if screen is None:
                return None  # a rule neither RE2 nor its triggers can screen: every row goes through the policy
            parts.append(screen)
    if policy.builtin_key_rule:
        parts.append("(?i:" + "|".join(_literal(hint) for hint in _SECRET_KEY_HINTS) + ")")
    return "|".join(f"(?:{part})" for part in parts) if parts else None


def flag_rows(policy: RedactionPolicy, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[int]:
    """Indices of the texts the policy could change (a superset); every index when no screen exists."""
    pattern = cached_screening_pattern(policy)
    # pyarrow compiles the RE2 pattern on every call (~0.7 ms): a handful of rows is cheaper to check directly.
    if pattern is None or len(texts) < SCREEN_MIN_ROWS:
        return list(range(len(texts)))
    column = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.string())
    flagged = pc.fill_null(pc.match_substring_regex(column, pattern), False)
    return pc.indices_nonzero(flagged).to_pylist()


@functools.lru_cache(maxsize=8)
def cached_screening_pattern(policy: RedactionPolicy) -> str | None:
    """screening_pattern(), computed once per policy object (checking each rule with RE2 takes a few ms)."""
    return screening_pattern(policy)
