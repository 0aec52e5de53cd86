"""Masking secrets and personal data in span, event and log attributes.

A `RedactionPolicy` is plain Python (no OpenTelemetry SDK needed), so the collector can run it on decoded attribute
dicts before storage and the export code before sending. Three kinds of rules:

* pattern rules: regular expressions over string values (built-in: API keys, bearer tokens, JWTs, connection-string
  keys, private-key blocks, emails, phone numbers, Luhn-checked card numbers; plus the user's own);
* key rules: attribute keys whose whole value is masked (built-in: password/secret/api_key-like key names);
* JSON-path rules: paths inside JSON payloads such as `gen_ai.input.messages` (`$[*].parts[*].content`, `$..email`).

Masked text becomes `[REDACTED:<rule>]`, so a reader sees that something was there and which rule removed it.
Speed matters (content can be megabytes per span): each pattern rule carries a cheap literal trigger checked with
`in` before its regex runs, so text without e.g. an `@` never pays for the email pattern.

`tracekit.redaction_pipeline` applies a policy inside the OpenTelemetry SDK pipeline (span and log processors).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tracekit.errors import TracekitError

__all__ = [
    "RedactionError",
    "PatternRule",
    "JsonPathRule",
    "RedactionPolicy",
    "BUILTIN_RULE_NAMES",
]

ENV_REDACTION = "TRACEKIT_REDACTION"  # "off" disables the built-in rules; "on"/unset keeps them
ENV_REDACTION_FILE = "TRACEKIT_REDACTION_FILE"  # a TOML or JSON policy file (format: docs/instrumentation.md)


class RedactionError(TracekitError):
    """A redaction policy (file, rule or JSON path) is invalid."""


def mask_text(rule_name: str) -> str:
    """The placeholder a masked value becomes."""
    return f"[REDACTED:{rule_name}]"


def _luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


@dataclass(frozen=True)
class PatternRule:
    """Mask every match of `regex` in string values.

    `group` picks the part of the match to mask (0: all of it; e.g. 2 keeps `AccountKey=` and masks the key).
    `left_guard` lists characters that may not precede a match (like a lookbehind, but leaving the regex
    free to start with a plain character class, which the engine scans much faster).
    `triggers` are literal substrings of which at least one must occur for the regex to run at all (speed only;
    empty means always run). With `anchored`, every match starts at a trigger: the rule then finds the triggers
    with `str.find` (memchr speed) and runs the regex only there, instead of scanning the text with it; `fold`
    makes the trigger search case-insensitive (triggers are then lower case). `validate` can veto a match (the
    Luhn check for card numbers).
    """

    name: str
    regex: re.Pattern[str]
    group: int = 0
    triggers: tuple[str, ...] = ()
    validate: Callable[[str], bool] | None = None
    category: str = "custom"
    left_guard: str = ""  # characters that must not come right before a match (a cheaper lookbehind)
    anchored: bool = False
    fold: bool = False
    locator: re.Pattern[str] | None = None  # finds match starts (a pattern with a literal first character is fast)
    ends_with: str = ""  # every trigger ends with this character; see _apply_anchored

    def apply(self, text: str, folded: str | None = None) -> tuple[str, int]:
        """`text` with this rule's matches masked, and how many were masked. `folded` is `text.lower()` when the
        caller already has it (several rules share one)."""
        if self.anchored:
            return self._apply_anchored(text, folded)
        return self._apply_scan(text)

    def _apply_scan(self, text: str) -> tuple[str, int]:
        if self.triggers and not self.fold and not any(trigger in text for trigger in self.triggers):
            return text, 0
        count = 0
        placeholder = mask_text(self.name)

        def replace(match: re.Match[str]) -> str:
            nonlocal count
            secret = match.group(self.group)
            start = match.start()
            if self.left_guard and start and text[start - 1] in self.left_guard:
                return match.group(0)
            if self.validate is not None and not self.validate(secret):
                return match.group(0)
            count += 1
            if self.group == 0:
                return placeholder
            start, end = match.span(self.group)
            whole_start = match.start()
            whole = match.group(0)
            return whole[: start - whole_start] + placeholder + whole[end - whole_start :]

        result = self.regex.sub(replace, text)
        return result, count

    def _apply_anchored(self, text: str, folded: str | None) -> tuple[str, int]:
        haystack = (folded if folded is not None else text.lower()) if self.fold else text
        if len(haystack) != len(text):  # a few Unicode characters change length when lowered: positions differ
            return self._apply_scan(text)
        starts: list[int] = []
        if self.locator is not None:
            starts = [match.start() for match in self.locator.finditer(haystack)]
        elif self.ends_with:
            # Triggers that all end with one rare character ("AccountKey=", "Pwd="): find that character, then check
            # which trigger ends there; much cheaper than one search per trigger.
            position = haystack.find(self.ends_with)
            while position != -1:
                for trigger in self.triggers:
                    trigger_start = position + 1 - len(trigger)
                    if trigger_start >= 0 and haystack.startswith(trigger, trigger_start):
                        starts.append(trigger_start)
                        break
                position = haystack.find(self.ends_with, position + 1)
        else:
            for trigger in self.triggers:
                position = haystack.find(trigger)
                while position != -1:
                    starts.append(position)
                    position = haystack.find(trigger, position + 1)
        if not starts:
            return text, 0
        starts.sort()
        pieces: list[str] = []
        last = 0
        count = 0
        placeholder = mask_text(self.name)
        for start in starts:
            if start < last or (self.left_guard and start and text[start - 1] in self.left_guard):
                continue
            match = self.regex.match(text, start)
            if match is None:
                continue
            if self.validate is not None and not self.validate(match.group(self.group)):
                continue
            secret_start, secret_end = match.span(self.group)
            pieces.append(text[last:secret_start])
            pieces.append(placeholder)
            last = secret_end if self.group else match.end()
            count += 1
        if not count:
            return text, 0
        pieces.append(text[last:])
        return "".join(pieces), count


def _rule(name: str, pattern: str, *, category: str, group: int = 0, triggers: Sequence[str] = (),
          flags: int = 0, validate: Callable[[str], bool] | None = None, left_guard: str = "",
          anchored: bool = False, fold: bool = False, locator: str | None = None, ends_with: str = "") -> PatternRule:
    return PatternRule(name, re.compile(pattern, flags), group, tuple(triggers), validate, category, left_guard,
                       anchored, fold, re.compile(locator) if locator else None, ends_with)


_DIGITS = tuple("0123456789")
_WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_DIGITS_AND_DASH = "0123456789-"

# Order matters a little: specific token formats run before the broad ones (a JWT inside "Bearer eyJ..." is masked
# once, as a JWT, and the bearer rule then finds only the placeholder, which it leaves alone).
BUILTIN_RULES: tuple[PatternRule | NumberRule, ...] = (
    _rule("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)",
          category="secret", triggers=["-----BEGIN "], flags=re.DOTALL, anchored=True),
    _rule("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}", category="secret",
          triggers=["eyJ"], left_guard=_WORD, anchored=True),
    _rule("openai_key", r"sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", category="secret",
          triggers=["sk-"], left_guard=_WORD + "-", anchored=True),
    _rule("aws_access_key", r"(?:AKIA|ASIA)[0-9A-Z]{16}\b", category="secret", triggers=["AKIA", "ASIA"],
          left_guard=_WORD, anchored=True, locator=r"A(?:KIA|SIA)"),
    _rule("github_token", r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})", category="secret",
          triggers=["gh", "github_pat_"], left_guard=_WORD, anchored=True, locator=r"g(?:h[pousr]_|ithub_pat_)"),
    _rule("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,}", category="secret", triggers=["xox"], left_guard=_WORD,
          anchored=True),
    _rule("google_api_key", r"AIza[0-9A-Za-z_-]{35}", category="secret", triggers=["AIza"], left_guard=_WORD,
          anchored=True),
    _rule("bearer_token", r"(?i)(bearer)\s+([A-Za-z0-9._~+/-]{8,}=*)", group=2, category="secret",
          triggers=["bearer"], left_guard=_WORD, anchored=True, fold=True),
    # Keys inside Azure-style connection strings and SAS URLs. InstrumentationKey is not a secret (it only
    # identifies where telemetry goes), so it is kept.
    _rule("connection_string_key",
          r"(?i)(AccountKey|SharedAccessKey|SharedAccessSignature|ClientSecret|Password|Pwd)=([^;\s\"'&]+)",
          group=2, category="secret", left_guard=_WORD, anchored=True, fold=True, ends_with="=",
          triggers=["accountkey=", "sharedaccesskey=", "sharedaccesssignature=", "clientsecret=", "password=",
                    "pwd="]),
    _rule("sas_signature", r"(?i)(sig)=([A-Za-z0-9%+/=]{16,})", group=2, category="secret", triggers=["sig="],
          left_guard=_WORD, anchored=True, fold=True),
    _rule("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", category="personal",
          triggers=["@"]),
)


# Byte classes for NumberRule: D = ASCII digit, S = a character numbers are written with, x = anything else.
_NUMBER_CLASSES = bytes(
    ord("D") if chr(code).isdigit() and code < 128 else ord("S") if chr(code) in "() .+-" else ord("x")
    for code in range(256)
)
_LONG_RUN = re.compile(rb"D[DS]{7,}")  # 8+ characters of a number, starting at a digit


class NumberRule:
    """Card numbers (Luhn-checked) and phone numbers, found in one pass over the text.

    Both are digit runs with separators. A regex that starts with a lookbehind, an optional group or a character
    class makes Python's engine try every position; instead the text is classified byte-wise (digit, separator,
    other) and a pattern starting with a literal class byte finds the runs long enough to matter; the exact
    patterns run only on those.
    """

    # Not inside a word: hex ids such as call_78c37aa3951188059159 hold Luhn-valid digit runs that are not cards.
    _CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
    _PHONE = re.compile(
        r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w-]|[ .]\d)"
        r"|(?<![\w+])\+\d{7,14}(?!\w)"
    )

    def __init__(self, *, cards: bool = True, phones: bool = True) -> None:
        self.cards = cards
        self.phones = phones
        self.name = "+".join(n for n, on in (("card_number", cards), ("phone_number", phones)) if on)
        self.category = "personal"

    def apply(self, text: str, folded: str | None = None) -> tuple[str, int]:
        """`text` with card and phone numbers masked, and how many were masked."""
        if not text.isascii() and _has_non_ascii_digit(text):
            # Digits beyond ASCII (a card typed in fullwidth digits, Arabic-Indic numerals) are digits to the
            # patterns but not to the byte classes below: the exact patterns run over the whole text instead.
            return self._mask_window(text)
        if not any(digit in text for digit in _DIGITS):
            return text, 0
        # One byte per character (latin-1, "?" for anything wider) keeps positions aligned with `text`.
        latin = text.encode("latin-1", "replace")
        regions = self._candidate_regions(latin) if len(text) >= SCREEN_NUMBERS_FROM else None
        if regions == []:
            return text, 0
        # Classify every character with C-speed byte operations. A pattern that starts with the literal class
        # byte "D" lets the regex engine jump from digit to digit instead of trying every position of the text.
        marks = latin.translate(_NUMBER_CLASSES)
        if regions is None:
            runs: Iterable[tuple[int, int]] = (
                (self._extend_left(marks, m.start()), m.end()) for m in _LONG_RUN.finditer(marks))
        else:
            runs = _runs_around(marks, regions)
        pieces: list[str] = []
        count = 0
        last = 0  # end of the text already copied to `pieces`
        for start, end in runs:
            # Widen by one character each side so the exact patterns can check their boundaries. When the previous
            # window already took the character before this run (the one "other" character between two runs), it
            # is still needed as this run's left boundary: include it again and drop it from the output. It is
            # never part of a match (not a digit, not a separator), so it comes out of both windows unchanged.
            window_start = max(last, start - 1)
            overlap = 0
            if window_start > start - 1 >= 0 and not text[start - 1].isdigit():
                window_start, overlap = start - 1, 1
            window_end = min(len(text), end + 1)
            masked, found = self._mask_window(text[window_start:window_end])
            if found:
                pieces.append(text[last:window_start])
                pieces.append(masked[overlap:])
                last = window_end
                count += found
        if not count:
            return text, 0
        pieces.append(text[last:])
        return "".join(pieces), count

    def _candidate_regions(self, latin: bytes) -> list[tuple[int, int]]:
        """Where the card and phone patterns without their lookarounds (a superset) match, found by RE2 in one pass.

        Text full of short numbers (tables, logs, prices) has a digit run every few words; the exact patterns
        then ran on every run, at 13-16 MB/s. Each match here may end with the guard character the next number
        starts after, so the next search starts one character before the end of the previous match."""
        screen = _number_screen(self.cards, self.phones)
        regions = []
        position, end = 0, len(latin)
        while position < end:
            match = screen.search(latin, position)
            if match is None:
                break
            regions.append((match.start(), match.end()))
            position = max(match.end() - 1, match.start() + 1)
        return regions

    @staticmethod
    def _extend_left(marks: bytes, start: int) -> int:
        """Include the separators right before a run's first digit (a leading "+" or "(" belongs to the number)."""
        while start > 0 and marks[start - 1] == 83:  # "S"
            start -= 1
        return start

    def _mask_window(self, window: str) -> tuple[str, int]:
        count = 0
        if self.cards:
            def card(match: re.Match[str]) -> str:
                nonlocal count
                if not _luhn_ok(match.group(0)):
                    return match.group(0)
                count += 1
                return mask_text("card_number")

            window = self._CARD.sub(card, window)
        if self.phones:
            window, phones = self._PHONE.subn(mask_text("phone_number"), window)
            count += phones
        return window, count


# Texts this long have their numbers screened with RE2 first (shorter ones cost less than the call into RE2).
SCREEN_NUMBERS_FROM = 2048


def _has_non_ascii_digit(text: str) -> bool:
    """Whether `text` holds a digit other than 0-9, found by RE2 in its UTF-8 form (~200 MB/s here, the encoding
    included; Python's engine checks a Unicode category per character at ~60 MB/s). A lone surrogate is passed
    through as bytes RE2 reads as no character at all."""
    return _non_ascii_digit_screen().search(text.encode("utf-8", "surrogatepass")) is not None


@functools.lru_cache(maxsize=1)
def _non_ascii_digit_screen() -> Any:
    import re2

    return re2.compile(rb"[^\P{Nd}0-9]")


@functools.lru_cache(maxsize=4)
def _number_screen(cards: bool, phones: bool) -> Any:
    """The screen for NumberRule over one-byte-per-character text: its patterns as RE2 runs them (Latin-1, so
    positions are characters; RE2's ASCII classes only widen the match where Python's are Unicode-aware)."""
    import re2

    from tracekit.redaction_screen import rule_screen

    # ASCII shorthands: the text is Latin-1 bytes, and texts with other digits never get here (see apply)
    parts = [rule_screen(regex, unicode=False)
             for regex, wanted in ((NumberRule._CARD, cards), (NumberRule._PHONE, phones)) if wanted]
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile("|".join(f"(?:{part})" for part in parts).encode("latin-1"), options)


def _runs_around(marks: bytes, regions: Sequence[tuple[int, int]]) -> Iterable[tuple[int, int]]:
    """The runs `_LONG_RUN` would find (with their leading separators) that hold a candidate region, in order.

    A run is a whole stretch of digit and separator classes that has a digit followed by seven or more such
    characters (the pattern is greedy), and a region's digits lie inside one stretch; so each region's stretch is
    found by looking for the "other" class byte on both sides, without scanning the rest of the text."""
    last_end = -1
    for region_start, region_end in regions:
        digit = marks.find(b"D", region_start, region_end)
        if digit < 0 or digit < last_end:
            continue  # no digit (cannot happen for these patterns), or inside the run already given
        stretch_start = marks.rfind(b"x", 0, digit) + 1
        stretch_end = marks.find(b"x", digit)
        if stretch_end < 0:
            stretch_end = len(marks)
        run = _LONG_RUN.search(marks, stretch_start, stretch_end)
        if run is None:
            continue
        last_end = stretch_end
        yield stretch_start, run.end()


BUILTIN_RULES = BUILTIN_RULES + (NumberRule(),)
BUILTIN_RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in BUILTIN_RULES[:-1]) + ("card_number", "phone_number")

# Attribute keys whose whole value is a secret, matched on the key's last segment (after the last '.').
_SECRET_KEY_RE = re.compile(
    r"(?i)(?:^|[._-])(password|passwd|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|"
    r"auth[_-]?token|refresh[_-]?token|authorization|cookie|set[_-]cookie|private[_-]?key|x-api-key)$"
)


# --- JSON paths ---------------------------------------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"\.\.([A-Za-z_][\w-]*|\*)|\.([A-Za-z_][\w-]*|\*)|\[(\*|-?\d+|'[^']*'|\"[^\"]*\")\]")


def _parse_json_path(path: str) -> tuple[tuple[str, Any], ...]:
    """A small JSONPath subset: `$`, `.name`, `..name` (any depth), `[*]`, `[n]`, `['name']`, `.*`."""
    if not path.startswith("$"):
        raise RedactionError(f"JSON path {path!r} must start with '$'")
    steps: list[tuple[str, Any]] = []
    position = 1
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None:
            raise RedactionError(f"JSON path {path!r}: cannot read from column {position + 1} ({path[position:]!r})")
        deep, child, bracket = match.groups()
        if deep is not None:
            steps.append(("deep", deep))
        elif child is not None:
            steps.append(("child", child))
        elif bracket == "*":
            steps.append(("child", "*"))
        elif bracket[0] in "'\"":
            steps.append(("child", bracket[1:-1]))
        else:
            steps.append(("index", int(bracket)))
        position = match.end()
    if not steps:
        raise RedactionError(f"JSON path {path!r} selects the whole value; use a key rule instead")
    return tuple(steps)


def _mask_path(node: Any, steps: tuple[tuple[str, Any], ...], placeholder: str) -> tuple[Any, int]:
    """Replace the values `steps` select inside `node` (in place for containers). Returns (node, masked)."""
    if not steps:
        return placeholder, 1
    kind, arg = steps[0]
    rest = steps[1:]
    count = 0
    if kind == "deep":
        # `..name`: apply `.name` + rest here, then recurse into every child with the deep step again.
        count += _mask_path_children(node, (("child", arg),) + rest, placeholder)
        for child in (node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()):
            if isinstance(child, (dict, list)):
                _, sub = _mask_path(child, steps, placeholder)
                count += sub
        return node, count
    count += _mask_path_children(node, steps, placeholder)
    return node, count


def _mask_path_children(node: Any, steps: tuple[tuple[str, Any], ...], placeholder: str) -> int:
    kind, arg = steps[0]
    rest = steps[1:]
    count = 0
    if isinstance(node, dict):
        keys: Iterable[Any] = list(node.keys()) if arg == "*" else ([arg] if kind != "index" and arg in node else [])
    elif isinstance(node, list):
        if arg == "*":
            keys = range(len(node))
        elif kind == "index" and -len(node) <= arg < len(node):
            keys = [arg]
        else:
            keys = []
    else:
        return 0
    for key in keys:
        node[key], sub = _mask_path(node[key], rest, placeholder)
        count += sub
    return count


@dataclass(frozen=True)
class JsonPathRule:
    """Mask the values at `path` inside JSON payloads of the attributes matching `attribute` (a glob)."""

    path: str
    attribute: str = "*"
    name: str = "json_path"
    steps: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _parse_json_path(self.path))


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")


# --- the policy ---------------------------------------------------------------------------------------------------------


class RedactionPolicy:
    """What to mask, and the functions that mask it.

    >>> policy = RedactionPolicy.default()
    >>> policy.redact_value("gen_ai.input.messages", "mail me at ann@example.com")
    'mail me at [REDACTED:email]'
    """

    def __init__(
        self,
        rules: Sequence[PatternRule | NumberRule] = (),
        *,
        secret_keys: Sequence[str] = (),
        json_paths: Sequence[JsonPathRule] = (),
        builtin_key_rule: bool = True,
        allow_keys: Sequence[str] = (),
    ) -> None:
        """Build a policy from explicit rules. Most callers want `default()`, `from_env()` or `from_file()`.

        `secret_keys` are attribute-key globs whose whole value is masked; `allow_keys` are globs never touched
        (e.g. ids you know are safe). `builtin_key_rule` masks values of keys named like passwords, secrets and
        API keys.
        """
        self.rules: tuple[PatternRule | NumberRule, ...] = tuple(rules)
        self.secret_keys = tuple(secret_keys)
        self.json_paths = tuple(json_paths)
        self.builtin_key_rule = builtin_key_rule
        self.allow_keys = tuple(allow_keys)
        self._secret_key_res = tuple(_glob_to_regex(key) for key in self.secret_keys)
        self._allow_key_res = tuple(_glob_to_regex(key) for key in self.allow_keys)
        self._path_rules_by_glob = tuple((_glob_to_regex(rule.attribute), rule) for rule in self.json_paths)
        # Per-key decision cache: attribute keys repeat across millions of spans, the decision does not change.
        self._key_cache: dict[str, tuple[str | None, tuple[JsonPathRule, ...]] | None] = {}

    # -- constructors --------------------------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> RedactionPolicy:
        """Every built-in rule: secrets, personal data and secret-named keys."""
        return cls(BUILTIN_RULES)

    @classmethod
    def disabled(cls) -> RedactionPolicy:
        """A policy that masks nothing (for tests and for users who redact elsewhere)."""
        return cls((), builtin_key_rule=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RedactionPolicy:
        """The policy the environment asks for: `TRACEKIT_REDACTION_FILE` if set, else the default policy
        (or none at all with `TRACEKIT_REDACTION=off`)."""
        env = os.environ if environ is None else environ
        path = env.get(ENV_REDACTION_FILE)
        if path:
            return cls.from_file(Path(path))
        if env.get(ENV_REDACTION, "").strip().lower() in {"off", "false", "0", "none"}:
            return cls.disabled()
        return cls.default()

    @classmethod
    def from_file(cls, path: Path | str) -> RedactionPolicy:
        """Read a policy from a TOML or JSON file (see `from_mapping` for the keys)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise RedactionError(f"cannot read redaction policy {path}: {error.strerror}") from error
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
            raise RedactionError(f"redaction policy {path} is not valid {path.suffix[1:].upper() or 'TOML'}: {error}") from error
        return cls.from_mapping(data.get("redaction", data), source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy") -> RedactionPolicy:
        """Build a policy from a mapping with these optional keys:

        `builtin` (true | false | list of built-in rule names to keep), `disable` (built-in rule names to drop),
        `patterns` ([{name, regex, group?}]), `keys` (attribute-key globs to mask whole),
        `json_paths` ([{path, attribute?, name?}]), `allow_keys` (globs never masked).
        """
        builtin = data.get("builtin", True)
        disabled = set(data.get("disable", ()))
        unknown = (disabled | (set(builtin) if isinstance(builtin, list) else set())) - set(BUILTIN_RULE_NAMES)
        if unknown:
            raise RedactionError(
                f"{source}: unknown built-in rule(s) {sorted(unknown)}; known: {', '.join(BUILTIN_RULE_NAMES)}"
            )
        wanted = set(BUILTIN_RULE_NAMES) if builtin is True else set() if builtin is False else set(builtin)
        wanted -= disabled
        rules: list[PatternRule | NumberRule] = [
            rule for rule in BUILTIN_RULES if isinstance(rule, PatternRule) and rule.name in wanted
        ]
        if "card_number" in wanted or "phone_number" in wanted:
            rules.append(NumberRule(cards="card_number" in wanted, phones="phone_number" in wanted))
        for index, entry in enumerate(data.get("patterns", ())):
            try:
                regex = re.compile(entry["regex"])
            except KeyError:
                raise RedactionError(f"{source}: patterns[{index}] needs a 'regex'") from None
            except re.error as error:
                raise RedactionError(
                    f"{source}: patterns[{index}] regex {entry['regex']!r} is invalid at position {error.pos}: {error.msg}"
                ) from error
            rules.append(PatternRule(str(entry.get("name", f"pattern{index}")), regex, int(entry.get("group", 0))))
        json_paths = []
        for index, entry in enumerate(data.get("json_paths", ())):
            if isinstance(entry, str):
                entry = {"path": entry}
            if "path" not in entry:
                raise RedactionError(f"{source}: json_paths[{index}] needs a 'path'")
            json_paths.append(JsonPathRule(entry["path"], entry.get("attribute", "*"), entry.get("name", "json_path")))
        return cls(
            rules,
            secret_keys=list(data.get("keys", ())),
            json_paths=json_paths,
            builtin_key_rule=builtin is not False and "secret_key" not in disabled,
            allow_keys=list(data.get("allow_keys", ())),
        )

    # -- masking ---------------------------------------------------------------------------------------------------------

    def _key_decision(self, key: str) -> tuple[str | None, tuple[JsonPathRule, ...]] | None:
        """None: leave the key alone. Else (whole-value mask rule name or None, JSON-path rules for the key)."""
        try:
            return self._key_cache[key]
        except KeyError:
            pass
        decision: tuple[str | None, tuple[JsonPathRule, ...]] | None
        if any(allow.match(key) for allow in self._allow_key_res):
            decision = None
        else:
            whole = None
            if any(secret.match(key) for secret in self._secret_key_res):
                whole = "key"
            elif self.builtin_key_rule and _SECRET_KEY_RE.search(key):
                whole = "secret_key"
            paths = tuple(rule for glob, rule in self._path_rules_by_glob if glob.match(key))
            decision = (whole, paths)
        if len(self._key_cache) < 10_000:
            self._key_cache[key] = decision
        return decision

    def redact_text(self, text: str) -> tuple[str, int]:
        """`text` with every pattern rule applied, and the number of values masked."""
        total = 0
        folded: str | None = None
        for rule in self.rules:
            if getattr(rule, "fold", False) and folded is None:
                folded = text.lower()
            text, count = rule.apply(text, folded)
            if count:
                total += count
                folded = None  # the text changed
        return text, total

    def redact_value_counted(self, key: str, value: Any) -> tuple[Any, int]:
        """Like `redact_value`, also returning how many values were masked."""
        decision = self._key_decision(key)
        if decision is None:
            return value, 0
        whole, paths = decision
        if whole is not None:
            if value is None or value == "" or isinstance(value, bool):
                return value, 0
            return mask_text(whole), 1
        if isinstance(value, str):
            count = 0
            if paths and value[:1] in "[{":
                value, count = self._apply_json_paths(value, paths)
            value, pattern_count = self.redact_text(value)
            return value, count + pattern_count
        if isinstance(value, (list, tuple)):
            total = 0
            items = []
            for item in value:
                if isinstance(item, str):
                    item, count = self.redact_text(item)
                    total += count
                items.append(item)
            return (tuple(items) if isinstance(value, tuple) else items) if total else value, total
        if isinstance(value, dict):
            if paths:
                for rule in paths:
                    value, _ = _mask_path(value, rule.steps, mask_text(rule.name))
            masked, count = self.redact_attributes(value)
            return masked, count
        return value, 0

    def redact_value(self, key: str, value: Any) -> Any:
        """`value` (an attribute value under `key`) with secrets and personal data masked."""
        return self.redact_value_counted(key, value)[0]

    def redact_attributes(self, attrs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """A copy of `attrs` with every value redacted, and the number of values masked."""
        result: dict[str, Any] = {}
        total = 0
        for key, value in attrs.items():
            new_value, count = self.redact_value_counted(key, value)
            result[key] = new_value
            total += count
        return result, total

    def _apply_json_paths(self, text: str, paths: tuple[JsonPathRule, ...]) -> tuple[str, int]:
        try:
            document = json.loads(text)
        except ValueError:
            return text, 0
        total = 0
        for rule in paths:
            document, count = _mask_path(document, rule.steps, mask_text(rule.name))
            total += count
        if not total:
            return text, 0
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")), total

    @property
    def is_noop(self) -> bool:
        """True when this policy can never mask anything (lets pipelines skip it)."""
        return not (self.rules or self.secret_keys or self.json_paths or self.builtin_key_rule)
