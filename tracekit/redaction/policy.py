"""A redaction policy: which rules apply, and THE function that masks a value.

`RedactionPolicy.redact_value_counted(key, value)` is the one place a value is masked: a string by the pattern rules,
a map key by key (its key text included), a list item by item (maps and lists inside lists too), the whole value when
its key is named like a secret. Every path calls it: the SDK processors (tracekit.redaction.sdk), the collector and
the export pages through tracekit.redaction.columns, offline import through the collector's processor. It is plain
Python (no OpenTelemetry SDK), so the collector runs it on decoded JSON.

Three kinds of rules (tracekit.redaction.rules): pattern rules over text, key rules (the whole value of a key named
like a secret, or matching the policy's key globs), and JSON-path rules inside JSON payloads such as
`gen_ai.input.messages` (`$[*].parts[*].content`, `$..email`).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import re2

from tracekit.errors import TracekitError
from tracekit.redaction.re2_forms import _literal, rule_screen
from tracekit.redaction.rules import (BUILTIN_RULE_NAMES, BUILTIN_RULES, SECRET_KEY_RE, NumberRule, PatternRule,
                                      mask_text)

ENV_REDACTION = "TRACEKIT_REDACTION"  # "off" disables the built-in rules; "on"/unset keeps them
ENV_REDACTION_FILE = "TRACEKIT_REDACTION_FILE"  # a TOML or JSON policy file (format: docs/instrumentation.md)


class RedactionError(TracekitError):
    """A redaction policy (file, rule or JSON path) is invalid."""


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
        self._text_screen: Any = None  # built on first use (see text_screen); not pickled
        # Per-key decision cache: attribute keys repeat across millions of spans, the decision does not change.
        self._key_cache: dict[str, tuple[str | None, str | None, tuple[JsonPathRule, ...]] | None] = {}
        self._text_cache: dict[str, tuple[str, int]] = {}  # short texts and what redact_text made of them

    # -- constructors --------------------------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> RedactionPolicy:
        """Every built-in rule: secrets, personal data and secret-named keys (one shared instance: its screen and
        key decisions are built once per process)."""
        global _DEFAULT
        if _DEFAULT is None:
            _DEFAULT = cls(BUILTIN_RULES)
        return _DEFAULT

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

    def _key_decision(self, key: str) -> tuple[str | None, str | None, tuple[JsonPathRule, ...]] | None:
        """None: leave the key and its value alone. Else (the key's text masked, or None when it holds nothing to
        mask; whole-value mask rule name or None; JSON-path rules for the key)."""
        try:
            return self._key_cache[key]
        except KeyError:
            pass
        decision: tuple[str | None, str | None, tuple[JsonPathRule, ...]] | None
        if any(allow.match(key) for allow in self._allow_key_res):
            decision = None
        else:
            whole = None
            if any(secret.match(key) for secret in self._secret_key_res):
                whole = "key"
            elif self.builtin_key_rule and SECRET_KEY_RE.search(key):
                whole = "secret_key"
            masked_key, key_masks = self.redact_text(key)  # keys are sender text too
            paths = tuple(rule for glob, rule in self._path_rules_by_glob if glob.match(key))
            decision = (masked_key if key_masks else None, whole, paths)
        if len(self._key_cache) < 10_000:
            self._key_cache[key] = decision
        return decision

    def redact_text(self, text: str) -> tuple[str, int]:
        """`text` with every pattern rule applied, and the number of values masked."""
        if len(text) <= _REMEMBERED_TEXT_CHARS:
            # Short values (model names, operations, paths, finish reasons) repeat from span to span: their answer
            # is remembered, sparing an RE2 call each.
            known = self._text_cache.get(text)
            if known is None:
                known = self._redact_text(text)
                if len(self._text_cache) < _REMEMBERED_TEXTS:
                    self._text_cache[text] = known
            return known
        return self._redact_text(text)

    def _redact_text(self, text: str) -> tuple[str, int]:
        screen = self.text_screen()
        rules: Sequence[PatternRule | NumberRule] = self.rules
        if screen is not None:
            # One RE2 pass says which rules can match at all (most texts: none); only those run in Python.
            matched = screen.Match(('"' + text + '"').encode("utf-8", "surrogatepass"))
            if not matched:
                return text, 0
            owners = self._screen_owners
            rules = [self.rules[index] for index in sorted({owners[match] for match in matched})]
        total = 0
        folded: str | None = None
        for rule in rules:
            if getattr(rule, "fold", False) and folded is None:
                folded = text.lower()
            text, count = rule.apply(text, folded)
            if count:
                total += count
                folded = None  # the text changed
        return text, total

    def redact_value_counted(self, key: str, value: Any) -> tuple[Any, int]:
        """`value` (held under `key`) with secrets and personal data masked, and how many values were masked.

        Strings go through the pattern rules (and the key's JSON-path rules first, when they hold JSON); maps are
        redacted key by key; lists item by item with the list's key (a list of messages, of maps, of lists). A key
        named like a secret masks its whole value, whatever its shape."""
        decision = self._key_decision(key)
        if decision is None:
            return value, 0
        _, whole, paths = decision
        if whole is not None:
            if value is None or value == "" or isinstance(value, bool):
                return value, 0
            return mask_text(whole), 1
        return self._redact_inner(value, paths, key)

    def _redact_inner(self, value: Any, paths: tuple[JsonPathRule, ...], key: str) -> tuple[Any, int]:
        if isinstance(value, str):
            count = 0
            if paths and value[:1] in "[{":
                value, count = self._apply_json_paths(value, paths)
            value, pattern_count = self.redact_text(value)
            return value, count + pattern_count
        if isinstance(value, dict):
            count = 0
            for rule in paths:
                value, masked = _mask_path(value, rule.steps, mask_text(rule.name))
                count += masked
            masked_map, map_count = self.redact_attributes(value)
            return masked_map, count + map_count
        if isinstance(value, (list, tuple)):
            total = 0
            items = []
            for item in value:
                if isinstance(item, (str, dict, list, tuple)):
                    item, count = self._redact_inner(item, (), key)
                    total += count
                items.append(item)
            return ((tuple(items) if isinstance(value, tuple) else items) if total else value), total
        return value, 0

    def redact_value(self, key: str, value: Any) -> Any:
        """`value` (an attribute value under `key`) with secrets and personal data masked."""
        return self.redact_value_counted(key, value)[0]

    def redact_attributes(self, attrs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """A copy of `attrs` with every key and value redacted, and the number of values masked."""
        result: dict[str, Any] = {}
        total = 0
        for key, value in attrs.items():
            new_value, count = self.redact_value_counted(key, value)
            decision = self._key_decision(key)
            if decision is not None and decision[0] is not None:
                key = decision[0]
                count += 1
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

    def rule_screens(self) -> list[tuple[int, str]] | None:
        """Each pattern rule as RE2 regexes over JSON text that match at least where the rule does (the rule's
        regex with lookarounds turned into guards, else its literal triggers), with the rule's index; None when a
        rule has neither."""
        parts: list[tuple[int, str]] = []
        for index, rule in enumerate(self.rules):
            regexes = [rule._CARD, rule._PHONE] if isinstance(rule, NumberRule) else [getattr(rule, "regex", None)]
            for regex in regexes:
                screen = rule_screen(regex, json_text=True) if regex is not None else None
                if screen is None and isinstance(rule, PatternRule) and rule.triggers:
                    literals = "|".join(_literal(trigger) for trigger in rule.triggers)
                    screen = f"(?i:{literals})" if rule.fold else literals
                if screen is None:
                    return None
                parts.append((index, screen))
        return parts

    def text_screen(self) -> Any:
        """The pattern rules as one RE2 set (`Match(text)` gives the screens that match a text in quotes; a rule
        whose screens all miss cannot change it), or None when the rules cannot be screened. Built on first use."""
        if self._text_screen is None:
            parts = self.rule_screens()
            if not parts:
                self._text_screen = False
            else:
                self._screen_owners = [index for index, _ in parts]
                self._text_screen = compile_set([pattern for _, pattern in parts])
        return self._text_screen or None

    def screen_owners(self) -> list[int]:
        """The index of the rule each screen of `text_screen()`'s set belongs to, in the set's order."""
        self.text_screen()
        return getattr(self, "_screen_owners", [])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_text_screen"] = None  # compiled RE2 objects do not pickle (worker processes build their own)
        state["_text_cache"] = {}
        return state

    @property
    def is_noop(self) -> bool:
        """True when this policy can never mask anything (lets pipelines skip it)."""
        return not (self.rules or self.secret_keys or self.json_paths or self.builtin_key_rule)


def policy_from_options(policy_file: str | None = None, *, disabled: bool = False) -> RedactionPolicy | None:
    """The policy a command's `--redaction-policy FILE` / `--no-redaction` ask for (else the environment's); None
    when nothing is to be masked."""
    if disabled:
        return None
    policy = RedactionPolicy.from_file(policy_file) if policy_file else RedactionPolicy.from_env()
    return None if policy.is_noop else policy


_DEFAULT: RedactionPolicy | None = None

# Texts up to this length have their redaction remembered, up to this many per policy (a few MB at most).
_REMEMBERED_TEXT_CHARS = 128
_REMEMBERED_TEXTS = 20_000

# Big enough that RE2's DFA for a whole screen stays in memory instead of falling back to the slower NFA.
_RE2_MAX_MEM = 64 << 20


def compile_screen(pattern: str) -> Any:
    """An RE2 screen compiled for UTF-8 byte texts. It reports where a match is, never its groups: the rules' groups
    would make RE2 run its slower engines over every match to fill them (~6 % of the screen on message JSON)."""
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.never_capture = True
    return re2.compile(pattern.encode(), options)


def compile_set(patterns: Sequence[str]) -> Any:
    """RE2 screens as one set over UTF-8 byte texts: `Match(text)` lists the indices of those that match."""
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    screen = re2.Set.SearchSet(options)
    for pattern in patterns:
        screen.Add(pattern)
    screen.Compile()
    return screen
