"""Masking a JSON text where it stands, without parsing it, when that provably gives what the policy gives.

The policy masks decoded values: parse the attribute map, mask each string, serialize again. For a row of message
JSON that is mostly parse, walk and serialize around one e-mail address. Many rules do not need the decoded value:
a token or an address is a run of plain characters (`PatternRule.json_chars`) that JSON writes as they are, and the
rule decides from the run around a trigger ("@", "sk-") and from whether the characters just outside it belong to
the run's characters or are word characters. Running such a rule over the JSON text masks exactly the same values
as running it over each decoded string, provided that for every trigger occurrence:

* the run does not start right after an escaping backslash (`\\n` before an address reads as "n" in the text),
  and does not end right before a `\\u` escape (which may stand for any character); any other escape stands for a
  quote, backslash, slash or control character, none of them a run or word character, just like the backslash the
  text has there;
* the run is not inside a key (a masked key is counted once per key, and two keys masked alike merge in a map).

and for the row as a whole:

* the policy's RE2 set, run over the text once, finds no rule that cannot run on JSON text;
* every key is left alone by the policy: shown by the same set when the text holds no secret-like name, no trigger
  of the rules found inside a key and no `\\u` escape (which could spell either), and the policy has no key globs or
  allowed keys; else the keys are read from the parsed text; and the policy has no JSON paths (those need the
  structure, so the parsed path runs).

The text the decoder writes is orjson's own form, so the result is byte for byte what parsing, masking and
serializing again gives (tests/redaction/test_jsontext.py compares both on planted rows and near misses).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from tracekit.redaction.policy import RedactionPolicy, compile_set
from tracekit.redaction.re2_forms import _literal
from tracekit.redaction.rules import SECRET_KEY_NAMES, EmailRule, PatternRule


class JsonTextMasker:
    """Masks JSON texts (attribute maps, log bodies) for one policy when the text form is provably exact."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._rules: dict[int, tuple[PatternRule, re.Pattern[str]]] = {}
        self._screen: Any = None
        screens = policy.rule_screens()
        if screens is None or policy.json_paths:
            return
        for index, rule in enumerate(policy.rules):
            if isinstance(rule, PatternRule) and rule.json_chars and not rule.fold and rule.group == 0:
                self._rules[index] = (rule, re.compile("[" + re.escape(rule.json_chars) + "]*"))
        if self._rules:
            # One RE2 set, run over the text once, says which rules can match it (a rule outside `_rules` sends the
            # text to the parsed path; only the rules found run on the text: a rule whose screen misses cannot
            # match), and whether a key could be masked: a secret-like name anywhere, or a trigger of a rule here
            # inside a key (the rest of a JSON string up to its closing quote, then a colon). One search for the
            # other rules' screens plus one per trigger hit took about three times as long on message JSON; parsing
            # each text for its keys took another ~10 % of the redaction stage on the content bench.
            patterns = [pattern for _, pattern in screens]
            self._owners = [index for index, _ in screens]
            if policy.builtin_key_rule:
                patterns.append(f"(?i:{'|'.join(SECRET_KEY_NAMES)})")
                self._owners.append(_KEY_NAME)
            for index, (rule, _) in self._rules.items():
                patterns.append("(?:" + "|".join(_literal(trigger) for trigger in rule.triggers) + ")" + _REST_OF_KEY)
                self._owners.append(_in_key(index))
            patterns.append(r"\\u")  # (a search of the text for it costs as much as the set: backslashes abound)
            self._owners.append(_ESCAPE_U)
            self._screen = compile_set(patterns)
        # Keys are read from the parsed text (each must be one the policy leaves alone) when the set cannot vouch for
        # them: key globs or allowed keys, or a \u escape in the text (which could spell a name or a trigger).
        self._globs = bool(policy.secret_keys or policy.allow_keys)
        self._plain: set[str] = set()  # keys the policy leaves alone (decisions are per key and never change)

    def mask(self, text: str, data: bytes) -> tuple[str, int] | None:
        """`text` (JSON; `data` its UTF-8 form) masked as the policy would mask its decoded values, and how many
        values were masked; None when the text form cannot be shown exact here (the caller parses instead)."""
        if self._screen is None:
            return None
        found = {self._owners[screen] for screen in self._screen.Match(data) or ()}
        rules = {owner for owner in found if owner >= 0}
        if not rules.issubset(self._rules):
            return None
        if (self._globs or _KEY_NAME in found or _ESCAPE_U in found or any(_in_key(index) in found for index in rules)
                ) and not self._plain_keys(orjson.loads(data)):
            return None
        total = 0
        for index in sorted(rules):
            rule, run = self._rules[index]
            if not _faithful(rule, run, text):
                return None
            text, count = rule.apply(text)
            total += count
        return text, total

    def _plain_keys(self, value: Any) -> bool:
        """Whether every key in `value` (at any depth) is left alone: its text holds nothing to mask, it is not named
        like a secret, not allowed or masked by a glob, and has no JSON-path rule."""
        if isinstance(value, dict):
            plain = self._plain
            if not plain.issuperset(value):
                for key in value:
                    if key not in plain:
                        if self.policy._key_decision(key) != _PLAIN_KEY:
                            return False
                        if len(plain) < 10_000:
                            plain.add(key)
            items: Any = value.values()
        elif isinstance(value, list):
            items = value
        else:
            return True
        return all(self._plain_keys(item) for item in items if type(item) in _CONTAINERS)


_CONTAINERS = (dict, list)
_KEY_NAME = -1  # the owner of the set's screen of secret-like key names
_ESCAPE_U = -2  # the owner of its screen for a \u escape


def _in_key(index: int) -> int:
    """The owner of the set's screen for a trigger of rule `index` inside a key."""
    return -3 - index


_REST_OF_KEY = r'(?:[^"\\]|\\.)*"\s*:'  # the rest of a JSON string, its closing quote, a colon: the string is a key
_PLAIN_KEY = (None, None, ())  # a key's decision when neither it nor its value is masked as a whole


def _escaping(text: str, position: int) -> bool:
    """Whether the backslash at `position` begins an escape (an odd number of backslashes ends there)."""
    start = position
    while start > 0 and text[start - 1] == "\\":
        start -= 1
    return (position - start) % 2 == 0


def _trigger_positions(rule: PatternRule, text: str) -> list[int]:
    if isinstance(rule, EmailRule) or rule.locator is None:
        positions = []
        for trigger in rule.triggers:
            position = text.find(trigger)
            while position != -1:
                positions.append(position)
                position = text.find(trigger, position + 1)
        return positions
    return [match.start() for match in rule.locator.finditer(text)]


def _faithful(rule: PatternRule, run: re.Pattern[str], text: str) -> bool:
    """Whether every run of the rule's characters around a trigger reads the same in the text as in the value."""
    chars = rule.json_chars
    for position in _trigger_positions(rule, text):
        start = position
        while start > 0 and text[start - 1] in chars:
            start -= 1
        if start > 0 and text[start - 1] == "\\" and _escaping(text, start - 1):
            return False
        end = run.match(text, position).end()
        if text.startswith("\\u", end):  # a backslash right after a run always begins an escape
            return False
    return True


@functools.lru_cache(maxsize=8)
def json_text_masker(policy: RedactionPolicy) -> JsonTextMasker:
    """The masker for `policy`, built once per policy object."""
    return JsonTextMasker(policy)
