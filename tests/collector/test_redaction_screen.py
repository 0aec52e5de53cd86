"""The RE2 screen must flag every text the policy would change (a superset), and little else."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.redaction import RedactionPolicy
from tracekit.redaction.screen import compiled_screen, flag_rows, screening_pattern

PLANTED = [
    "my key is sk-proj-A1b2C3d4E5f6G7h8J9k0A1b2C3d4", "AKIAABCDEFGHIJKLMNOP", "ghp_" + "a" * 36,
    "xoxb-1234567890-abcdefghij", "AIza" + "B" * 35, "Authorization: Bearer abcdefghijklmnop",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU", "AccountKey=abc123def456==",
    "https://x.blob.core.windows.net/c?sig=abcdefghijklmnopqrstuv", "mail ann.lee@example.com now",
    "card: 4111 1111 1111 1111.", "(4111-1111-1111-1111)", "call +1 (206) 555-0100 today", "+442071838750",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
    "Authorization: Bearer\nabcdefghijklmnop", "Bearer\t\u000babcdefghijklmnop",  # JSON escapes these spaces
    # Python's \d and \s are Unicode: a card in fullwidth digits, a phone in Arabic-Indic ones, a no-break space
    "pay \uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",
    "+\u0669\u0667\u0661 \u0665\u0660 \u0661\u0662\u0663 \u0664\u0665\u0666\u0667", "Bearer\u00a0abcdefghijklmnop",
]
HARMLESS = ["call_78c37aa3951188059159", "sess-7a5841590038750e", "chatcmpl-802d9825022590575da1",
            "gen_ai.usage.input_tokens", "2026-11-22", "tokens: 120, latency 1.5 s", "Paris in spring"]


def _as_attribute_json(text: str) -> str:
    return json.dumps({"gen_ai.input.messages": text, "gen_ai.tool.call.id": "call_1"}, ensure_ascii=False)


def test_the_screen_flags_every_text_the_policy_changes():
    policy = RedactionPolicy.default()
    texts = [_as_attribute_json(text) for text in PLANTED] * 3  # over the direct-check threshold
    for text in texts:
        assert policy.redact_attributes(json.loads(text))[1] > 0, text  # the planted values are real hits
    assert flag_rows(policy, texts) == list(range(len(texts)))


def test_the_screen_leaves_ordinary_rows_alone():
    policy = RedactionPolicy.default()
    texts = [_as_attribute_json(text) for text in HARMLESS] * 6
    assert flag_rows(policy, texts) == []


def test_secret_named_keys_are_flagged_by_name():
    policy = RedactionPolicy.default()
    texts = [json.dumps({"db.password": "hunter2"})] * 40
    assert len(flag_rows(policy, texts)) == 40


def test_anchored_user_rules_are_screened_where_values_start_and_end_inside_json():
    """A user's rule is written for a value (^ and $ are its ends); the screen runs on the JSON text around it."""
    policy = RedactionPolicy.from_mapping({"patterns": [{"name": "employee", "regex": r"^EMP\d{6}$"},
                                                         {"name": "note", "regex": r"\Alabel:\s+x\Z"}]})
    texts = [json.dumps({"a": "EMP123456"}), json.dumps({"a": "id EMP123456"}), json.dumps({"b": ["EMP654321"]}),
             json.dumps({"a": "label:\n x"}), json.dumps({"a": "EMP12345"})]
    expected = [index for index, text in enumerate(texts) if policy.redact_attributes(json.loads(text))[1]]
    assert expected == [0, 2, 3]  # the rules do match these values (the test's own premise)
    assert set(expected) <= set(flag_rows(policy, texts))
    assert 4 not in flag_rows(policy, texts)


def test_user_rules_are_screened_with_python_s_unicode_classes():
    """RE2's \\w is ASCII only; a user's rule means Python's, where accented letters are word characters."""
    policy = RedactionPolicy.from_mapping({"patterns": [{"name": "badge", "regex": r"badge-\w{4}\b"}]})
    texts = [json.dumps({"a": "badge-\u00c9l\u00e8v"}, ensure_ascii=False), json.dumps({"a": "badge-12"})] * 20
    assert policy.redact_attributes(json.loads(texts[0]))[1] == 1  # the rule does match (the test's premise)
    assert flag_rows(policy, texts) == list(range(0, 40, 2))


def test_shorthands_widen_outside_negated_classes_only():
    from tracekit.redaction.re2_forms import unicode_shorthands

    assert unicode_shorthands(r"\d[\d.]") == r"[\p{Nd}][\p{Nd}.]"
    assert unicode_shorthands(r"[\d]\d") == r"[\p{Nd}][\p{Nd}]"  # the class closes after an escape
    assert unicode_shorthands(r"[^\d]\w") == r"[^\d][\p{L}\p{N}_]"  # negated: kept ASCII; after it: widened
    assert unicode_shorthands(r"[]\d][^]\s]\\d") == r"[]\p{Nd}][^]\s]\\d"  # a leading ] is literal


def test_policies_that_depend_on_structure_check_every_row():
    policy = RedactionPolicy.from_mapping({"keys": ["customer.*"]})
    assert screening_pattern(policy) is None
    assert flag_rows(policy, ["{}"] * 40) == list(range(40))


FRAGMENTS = PLANTED + HARMLESS + ["4111111111111111", "+442071838750", "x", "", "é ü 4111", "-", "+"]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.one_of(st.none(), st.sampled_from(FRAGMENTS),
                               st.sampled_from(FRAGMENTS).map(_as_attribute_json),
                               st.sampled_from(FRAGMENTS).map(json.dumps)), max_size=60),
       start=st.integers(0, 5), chunks=st.integers(1, 3))
def test_the_buffer_scan_flags_what_a_search_of_each_text_alone_flags(rows, start, chunks):
    """Searching a whole Arrow buffer (rows next to each other) must flag every row that matches on its own, for
    JSON and non-JSON rows, nulls, empty rows, sliced arrays and chunked arrays."""
    policy = RedactionPolicy.default()
    screen = compiled_screen(policy)
    alone = {index for index, text in enumerate(rows[start:]) if text and screen.search(text.encode()) is not None}
    array = pa.array(rows, pa.string()).slice(start)
    size = max(1, len(array) // chunks)
    chunked = pa.chunked_array([array.slice(offset, size) for offset in range(0, len(array), size)] or [array],
                               pa.string())
    for texts in (array, chunked, array.cast(pa.large_string()), array.to_pylist()):
        flagged = flag_rows(policy, texts)
        assert alone <= set(flagged), (texts, flagged)
        assert all(array[index].is_valid for index in flagged)
        if all(text is None or text.startswith("{") for text in rows[start:]):
            assert set(flagged) == alone  # JSON objects side by side never make a match of their own


def test_every_pair_of_neighbouring_rows_is_screened_as_each_row_alone():
    """Two rows side by side in the buffer, every ordered pair of texts (bare and as attribute maps): the
    buffer scan must flag each row that matches alone, and add nothing for JSON rows."""
    policy = RedactionPolicy.default()
    screen = compiled_screen(policy)
    forms = FRAGMENTS + [_as_attribute_json(text) for text in FRAGMENTS]
    matches = {text: bool(text) and screen.search(text.encode()) is not None for text in forms}
    for first in forms:
        for second in forms:
            alone = {index for index, text in enumerate((first, second)) if matches[text]}
            flagged = set(flag_rows(policy, pa.array([first, second])))
            assert alone <= flagged, (first, second)
            if first.startswith("{") and second.startswith("{"):
                assert flagged == alone, (first, second)


def test_each_rule_that_changes_a_value_is_named_by_the_set_over_its_json_text():
    """The per-row RE2 set decides which rules run on a flagged row (and whether it can be masked in its text): for
    every planted value, also held as JSON text in a string (a tool call's arguments, where quotes read \\"), each
    rule that changes the value must be named by the set searched over the attribute map's JSON text."""
    policy = RedactionPolicy.default()
    screen, owners = policy.text_screen(), policy.screen_owners()
    aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    values = PLANTED + ['{"password": "hunter2"}', json.dumps({"aws_secret_access_key": aws_secret}),
                        f"AWS_SECRET_ACCESS_KEY='{aws_secret}'"]
    checked = 0
    for value in values:
        for held in (value, json.dumps({"arguments": value}), json.dumps([{"content": value}], ensure_ascii=False)):
            changing = {index for index, rule in enumerate(policy.rules) if rule.apply(held)[1]}
            row = json.dumps({"k": held}, ensure_ascii=False)
            named = {owners[match] for match in screen.Match(row.encode()) or ()}
            assert changing <= named, (held, changing, named)
            assert not changing or flag_rows(policy, [row]) == [0], row  # and the column screen flags the row
            checked += len(changing)
    assert checked > 50  # the rules do change these values (the test's own premise)


# User rules that match what JSON text holds escaped (control characters, quotes, backslashes), and values they match.
ESCAPED_RULES = [r"[\x00-\x1f]", r"a\nb", r"^.{3}$", r"a\Wb", r"C:\\Users", r"(?m)^tok$", r"tok$", r"k\x00",
                 r"\t\t\t", r"^[ -~]{4}$", r"\bfoo\b", r"[\s\S]{5}secret", r"x\u0007y", r'say "hi"', r"[^a-z]{3}"]
ESCAPED_HITS = ["bell\x07here", "xa\nby", "x\ty", "a\nb", "path C:\\Users\\ann", "a\ntok\nb", "tok\n", "k\x00",
                "\t\t\t", 'a"bc', "\nfoo", "\n\n\n\n\nsecret", "x\x07y", 'say "hi"', "\\\n\x1f"]


def _stored(policy: RedactionPolicy, value: str) -> str:
    """`value` as the collector stores it under an attribute: redacted from its JSON text."""
    from tracekit.redaction.columns import TableRedactor

    row = json.dumps({"message_text": value}, ensure_ascii=False)
    table = TableRedactor(policy).redact_table("spans", pa.table({"attributes": [row]}))
    return json.loads(table.column("attributes")[0].as_py())["message_text"]


def test_user_rules_match_what_json_text_holds_escaped():
    """A rule is written for the value a user sees (a newline is a newline); in the JSON text the screen reads, it is
    the two characters \\n, a quote is \\" and a control character \\u00XX. Each of these rules masks its value in the
    store as the policy masks the value itself (before the screen took escapes into account, 9 of them were stored
    unmasked)."""
    for regex, value in zip(ESCAPED_RULES, ESCAPED_HITS):
        policy = RedactionPolicy.from_mapping({"builtin": False, "patterns": [{"name": "u", "regex": regex}]})
        masked = policy.redact_value("message_text", value)
        assert masked == _masked_by_re(regex, value) and "[REDACTED:u]" in masked, (regex, value)  # premise
        assert _stored(policy, value) == masked, (regex, value)


def _masked_by_re(regex: str, value: str) -> str:
    import re

    return re.sub(regex, "[REDACTED:u]", value)


@settings(max_examples=300, deadline=None)
@given(regex=st.sampled_from(ESCAPED_RULES),
       value=st.one_of(st.sampled_from(ESCAPED_HITS), st.text(alphabet='aktofxyC:\\U"\n\t\x00\x07\x1f -~', max_size=10)))
def test_user_rules_are_screened_wherever_they_match_escaped_characters(regex, value):
    policy = RedactionPolicy.from_mapping({"builtin": False, "patterns": [{"name": "u", "regex": regex}]})
    masked = policy.redact_value("message_text", value)
    assert masked == _masked_by_re(regex, value)  # the policy's own screen hides no match
    assert _stored(policy, value) == masked
