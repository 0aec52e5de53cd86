"""Python regular expressions rewritten for RE2 (google-re2), which the fast screens run.

RE2 has no lookarounds and its shorthands are ASCII only; a screen must match at least where the Python rule does,
so each translation only ever widens a pattern. Used by the rules (the number screen) and by the policy's screen.
"""

from __future__ import annotations

import re
import warnings

import re2

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


def _negated_class_guard(group: str, json_text: bool = False) -> str:
    r"""RE2 has no lookarounds. A negative one over a single character class, such as (?<![\w-]), becomes a
    consuming guard, (?:^|[^\w-]), which is just as strict for a screen (only whether a text matches counts);
    any other lookaround is dropped, which only widens the match. In JSON text a guard behind also accepts an
    escape: a newline before a phone number is the two characters \n there, and "n" is a word character."""
    match = _SINGLE_CLASS.match(group)
    if match is None:
        return ""
    behind, char_class = match.groups()
    negated = "[" + char_class[2:] if char_class.startswith("[^") else "[^" + char_class[1:]
    if behind:
        return f"(?:^|{negated}|{_JSON_ESCAPE})" if json_text else f"(?:^|{negated})"
    return f"(?:$|{negated})"


_JSON_ESCAPE = r"\\[bfnrt\"/]|\\u[0-9a-fA-F]{4}"  # an escape sequence in JSON text, as an RE2 pattern


def _strip_lookarounds(pattern: str, json_text: bool = False) -> str:
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
            out.append(_negated_class_guard(pattern[index:cursor + 1], json_text))
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
    candidate: str | None = _strip_lookarounds(regex.pattern, json_text)
    if json_text:
        candidate = json_text_form(candidate)
    if unicode:
        candidate = unicode_shorthands(candidate)
    if flags:
        candidate = f"(?{flags}){candidate}"
    return candidate if _accepted_by_re2(candidate) else None


# In JSON text a value's whitespace is escaped (a newline is the two characters \n, other control characters
# \u00XX) and its start and end sit next to a quote. Screens run on JSON text, so these stand in for \s, ^ and $ (a
# line's start and end, for (?m) and for $ before a final newline, may also sit next to a newline, escaped in JSON
# text, as it is in a plain text screened in quotes).
_JSON_SPACE = r'(?:\s|\\[bfnrt]|\\u00[0-9a-fA-F]{2})'
_JSON_START = r'(?:^|"|\\n|\n)'
_JSON_END = r'(?:$|"|\\n|\n)'
# A quote inside a JSON string is written \" (a field of JSON text held in a string, such as a tool call's
# arguments), and \\\" one level deeper: a pattern's quote matches after any run of backslashes.
_JSON_QUOTE = r'\\*"'
# The characters JSON text holds escaped (control characters, quote, backslash), and any escape sequence.
_ESCAPED_CHARS = tuple(chr(code) for code in range(0x20)) + ('"', "\\")
_ANY_ESCAPE = r'\\(?:[bfnrt"\\/]|u[0-9a-fA-F]{4})'
# One escape of a Python pattern: \xHH, \uHHHH, \UHHHHHHHH, \N{name}, an octal escape, or a backslash and a character.
_ESCAPE_TOKEN = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|0[0-7]{0,2}|[1-3][0-7]{2}|.)",
                           re.DOTALL)


def _matches_escaped(element: str) -> bool:
    """Whether a pattern element (an escape, a character class) can match a character JSON text holds escaped."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" and the like: the element is only tried
            compiled = re.compile(element)
    except re.error:
        return True  # cannot tell: widen
    return any(compiled.fullmatch(char) for char in _ESCAPED_CHARS)


def _re2_escape(token: str) -> str:
    r"""A Python escape as RE2 writes it (\uHHHH and \UHHHHHHHH are \x{H...} there)."""
    if token[1:2] in ("u", "U") and len(token) > 2:
        return f"\\x{{{int(token[2:], 16):x}}}"
    return token


def json_text_form(pattern: str) -> str:
    r"""An RE2 `pattern` written for a string value, widened to match where the value appears inside JSON text,
    where control characters, quotes and backslashes are escaped: ^ and $ (and \A, \Z) also match next to a quote
    or an escaped newline, \s also matches JSON's escapes, a quote (or a class that takes one) also matches after
    backslashes, as in JSON text held in a string, and every other element that can match an escaped character (a
    class such as [\x00-\x1f] or [^a-z], ., \n, \W, a literal control character) also matches any escape sequence.
    A word boundary (\b) is dropped: the letter of an escape (\n) sits where the value has a non-word character."""
    out: list[str] = []
    index, in_class = 0, False
    class_start, class_origin, negated, quoted = 0, 0, False, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            token = _ESCAPE_TOKEN.match(pattern, index).group()  # type: ignore[union-attr]
            index += len(token)
            if in_class:
                quoted = quoted or token == '\\"'
                out.append(_re2_escape(token))
            elif token == "\\s":
                out.append(_JSON_SPACE)
            elif token == "\\A":
                out.append(_JSON_START)
            elif token in ("\\Z", "\\z"):  # Python's end of text is \Z, RE2's \z
                out.append(_JSON_END)
            elif token == '\\"':
                out.append(_JSON_QUOTE)
            elif token == "\\b":
                pass
            elif _matches_escaped(token):
                out.append(f"(?:{_re2_escape(token)}|{_ANY_ESCAPE})")
            else:
                out.append(_re2_escape(token))
            continue
        if in_class:
            if char == "]" and not out[-1].endswith("[") and not "".join(out).endswith("[^"):
                in_class = False
            quoted = quoted or char == '"'
            out.append(char)
            if not in_class:
                body = "".join(out[class_start:])
                if quoted and not negated:  # [\"'] becomes (?:\\*[\"'])
                    body = "\\\\*" + body
                if _matches_escaped(pattern[class_origin:index + 1]):
                    body += "|" + _ANY_ESCAPE
                out[class_start:] = [f"(?:{body})"]
        elif char == "[":
            in_class, class_start, class_origin, quoted = True, len(out), index, False
            negated = pattern.startswith("^", index + 1)
            out.append(char)
        elif char == '"':
            out.append(_JSON_QUOTE)
        elif char == "^":
            out.append(_JSON_START)
        elif char == "$":
            out.append(_JSON_END)
        elif char == "." or char in _ESCAPED_CHARS:
            literal = "." if char == "." else f"\\x{{{ord(char):x}}}"
            out.append(f"(?:{literal}|{_ANY_ESCAPE})")
        else:
            out.append(char)
        index += 1
    return "".join(out)
