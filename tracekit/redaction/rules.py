"""The built-in redaction rules: what a secret or a piece of personal data looks like in text, and which attribute
keys hold a secret as their whole value.

* pattern rules (`PatternRule`): a regular expression over string values, with a cheap literal trigger checked
  with `in` (or located with `str.find`) before the regex runs, so text without e.g. an `@` never pays for the
  email pattern; `validate` vetoes matches that only look right (Luhn for cards, mod 97 for IBANs);
* `NumberRule`: card and phone numbers, found in one pass over byte classes;
* `SECRET_KEY_NAMES`: attribute-key names whose whole value is masked (matched on the key's last segment).

Masked text becomes `[REDACTED:<rule>]`, so a reader sees that something was there and which rule removed it.
How to write a rule of your own: docs/instrumentation.md ("Redaction") and SECURITY.md.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import re2

from tracekit.redaction.re2_forms import rule_screen

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
    screened: bool = False  # no cheap trigger: the rule's own RE2 form checks the text first (see _apply_scan)
    # The characters a match consists of, when the rule decides from a run of them around a trigger and from whether
    # the characters just outside the run are among them (and word characters): such a rule can run on JSON text
    # directly (tracekit.redaction.jsontext). Empty: the rule needs the decoded value.
    json_chars: str = ""

    def apply(self, text: str, folded: str | None = None) -> tuple[str, int]:
        """`text` with this rule's matches masked, and how many were masked. `folded` is `text.lower()` when the
        caller already has it (several rules share one)."""
        if self.anchored:
            return self._apply_anchored(text, folded)
        return self._apply_scan(text)

    def _apply_scan(self, text: str) -> tuple[str, int]:
        if self.triggers and not self.fold and not any(trigger in text for trigger in self.triggers):
            return text, 0
        if self.screened and _own_screen(self.regex.pattern, self.regex.flags).search(
                text.encode("utf-8", "surrogatepass")) is None:
            # Digits and capitals are everywhere: Python's engine would try the pattern at each of them, RE2 reads
            # the text once (~10x faster on message JSON).
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
          anchored: bool = False, fold: bool = False, locator: str | None = None, ends_with: str = "",
          screened: bool = False, json_chars: str = "") -> PatternRule:
    return PatternRule(name, re.compile(pattern, flags), group, tuple(triggers), validate, category, left_guard,
                       anchored, fold, re.compile(locator) if locator else None, ends_with, screened, json_chars)


@functools.lru_cache(maxsize=64)
def _own_screen(pattern: str, flags: int) -> Any:
    """A rule's regex as RE2 runs it on plain text (a superset: lookarounds become guards or go), compiled once per
    process (compiled RE2 objects do not pickle, so rules hold only their pattern)."""
    screen = rule_screen(re.compile(pattern, flags))
    return re2.compile((screen or "").encode()) if screen else _ALWAYS




_DIGITS = tuple("0123456789")
_WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_ALNUM = _WORD[:-1]


# Attribute-key names whose whole value is a secret (regex fragments, case-insensitive), matched on the key's end
# after a separator: `db.password`, `http.request.header.x-api-key`, `AWS_SECRET_ACCESS_KEY`. The one list: the
# policy's key rule and the fast screen are both built from it.
SECRET_KEY_NAMES: tuple[str, ...] = (
    "password", "passwd", "pwd", "passphrase", "secret", "client[_-]?secret", "secret[_-]?(?:key|token)",
    "secret[_-]?access[_-]?key", "api[_-]?key", "access[_-]?token", "auth[_-]?token", "refresh[_-]?token",
    "id[_-]?token", "session[_-]?token", "bearer[_-]?token", "security[_-]?token", "private[_-]?key",
    "authorization", "cookie", "set[_-]cookie", "credentials?",
)


_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


@dataclass(frozen=True)
class EmailRule(PatternRule):
    """E-mail addresses, found from their "@": scanning a whole message with the pattern made Python's engine try
    it at every word; here only the characters before each "@" are looked at."""

    def apply(self, text: str, folded: str | None = None) -> tuple[str, int]:
        at = text.find("@")
        if at < 0:
            return text, 0
        pieces: list[str] = []
        last = count = 0
        placeholder = mask_text(self.name)
        while at >= 0:
            start = at
            while start > last and at - start < 256 and text[start - 1] in _EMAIL_LOCAL:
                start -= 1
            for candidate in range(start, at):  # the leftmost start the pattern accepts, as a search would find
                match = self.regex.match(text, candidate)
                if match is not None:
                    pieces.append(text[last:match.start()])
                    pieces.append(placeholder)
                    last = match.end()
                    count += 1
                    break
            at = text.find("@", max(at + 1, last))
        if not count:
            return text, 0
        pieces.append(text[last:])
        return "".join(pieces), count


_PLACEHOLDER = re.compile(r"(?:\[REDACTED:[\w+]+\])?")  # empty, or masked already by an earlier rule


def _not_masked(value: str) -> bool:
    return _PLACEHOLDER.fullmatch(value) is None


def _iban_ok(candidate: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, letters as 10..35, the number mod 97 is 1."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _ssn_ok(candidate: str) -> bool:
    """US SSNs are never issued with area 000, 666 or 900-999, group 00 or serial 0000."""
    area, group, serial = candidate.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# Order matters a little: specific token formats run before the broad ones (a JWT inside "Bearer eyJ..." is masked
# once, as a JWT, and the bearer rule then finds only the placeholder, which it leaves alone).
_PATTERN_RULES: tuple[PatternRule, ...] = (
    _rule("private_key",
          r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
          r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)",
          category="secret", triggers=["-----BEGIN "], flags=re.DOTALL, anchored=True),
    _rule("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}", category="secret",
          triggers=["eyJ"], left_guard=_WORD, anchored=True,
          json_chars=_WORD + "-."),
    _rule("openai_key", r"sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", category="secret",
          triggers=["sk-"], left_guard=_WORD + "-", anchored=True,
          json_chars=_WORD + "-"),
    _rule("aws_access_key", r"(?:AKIA|ASIA)[0-9A-Z]{16}\b", category="secret", triggers=["AKIA", "ASIA"],
          left_guard=_WORD, anchored=True,
          json_chars=_WORD, locator=r"A(?:KIA|SIA)"),
    # A secret access key is 40 characters of base64 with nothing of its own to recognise it by: only next to
    # its name (AWS_SECRET_ACCESS_KEY=..., "aws_secret_access_key": "...", aws ... secret: ...).
    _rule("aws_secret_key",
          r"(?i)(aws_?secret_?(?:access_?)?key|aws.{0,16}?secret)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})"
          r"(?![A-Za-z0-9/+=])",
          group=2, category="secret", triggers=["aws"], left_guard=_ALNUM, anchored=True, fold=True),
    _rule("github_token", r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})", category="secret",
          triggers=["gh", "github_pat_"], left_guard=_WORD, anchored=True,
          json_chars=_WORD, locator=r"g(?:h[pousr]_|ithub_pat_)"),
    _rule("gitlab_token", r"gl(?:pat|ptt|dt|rt|soat|cbt|imt|ft)-[A-Za-z0-9_-]{20,}", category="secret",
          triggers=["gl"], left_guard=_WORD, anchored=True,
          json_chars=_WORD + "-", locator=r"gl(?:pat|ptt|dt|rt|soat|cbt|imt|ft)-"),
    _rule("slack_token", r"(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}", category="secret", triggers=["xox", "xapp-"],
          left_guard=_WORD, anchored=True,
          json_chars=_WORD + "-", locator=r"x(?:ox[abposr]|app)-"),
    _rule("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}",
          category="secret", triggers=["hooks.slack.com/"]),
    _rule("google_api_key", r"AIza[0-9A-Za-z_-]{35}", category="secret", triggers=["AIza"], left_guard=_WORD,
          anchored=True,
          json_chars=_WORD + "-"),
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
    # A secret-named field inside JSON text (tool-call arguments, a request body recorded as a string), where the
    # key rule cannot see it: {"password": "..."} masks the value.
    _rule("secret_field",
          r'(?i)"(?:[\w.-]*[._-])?(?:' + "|".join(SECRET_KEY_NAMES) + r')"\s*:\s*"((?:[^"\\]|\\.)*)"',
          group=1, category="secret", triggers=['"'], validate=_not_masked, screened=True),
    EmailRule("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
              triggers=("@",), category="personal", json_chars="".join(sorted(_EMAIL_LOCAL)) + "@"),
    _rule("us_ssn", r"\d{3}-\d{2}-\d{4}(?![\w-])", category="personal", triggers=["-"], validate=_ssn_ok,
          left_guard=_WORD + "-", screened=True),
    _rule("iban", r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])", category="personal",
          validate=_iban_ok, left_guard=_WORD, screened=True),
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
    return re2.compile(rb"[^\P{Nd}0-9]")


@functools.lru_cache(maxsize=4)
def _number_screen(cards: bool, phones: bool) -> Any:
    """The screen for NumberRule over one-byte-per-character text: its patterns as RE2 runs them (Latin-1, so
    positions are characters; RE2's ASCII classes only widen the match where Python's are Unicode-aware)."""
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


BUILTIN_RULES: tuple[PatternRule | NumberRule, ...] = _PATTERN_RULES + (NumberRule(),)
BUILTIN_RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in _PATTERN_RULES) + ("card_number", "phone_number")

SECRET_KEY_RE = re.compile(r"(?i)(?:^|[._-])(?:" + "|".join(SECRET_KEY_NAMES) + r")$")


class _Always:
    """Stands in for a screen RE2 cannot build: every text may match."""

    @staticmethod
    def search(_: bytes) -> bool:
        return True


_ALWAYS = _Always()
