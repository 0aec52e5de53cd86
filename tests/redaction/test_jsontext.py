"""Masking JSON text where it stands (tracekit.redaction.jsontext) gives byte for byte what parsing, masking each
decoded value and serializing again gives (`redact_json_parsed`, the reference), on realistic attribute maps with
secrets planted next to JSON escapes, inside keys, in nested messages, and near misses that must stay."""

from __future__ import annotations

import json
import random
import string

import orjson

from tracekit.redaction import RedactionPolicy
from tracekit.redaction.columns import _redact_json, redact_json_parsed
from tracekit.redaction.jsontext import json_text_masker

_WORDS = ("flight", "night", "hotel", "Lisbon", "task-force", "desk-side", "weight", "global", "english", "risk-free",
          "AKIAX", "ghost", "glance", "xoxo", "eyJust", "sk-short", "AIzb", "call_78c37aa3951188059159", "2026-05-12",
          "fare 1240 USD", "gate B12", "é", "日本", "naïve", "C:\\new\\table", "50%")


_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    pick = rng.randrange(11)
    if pick == 0:
        return rng.choice(["ann", "raj.k", "li+trips", "o'neil"]) + "@example.com"
    if pick == 1:
        return "sk-proj-" + "".join(rng.choice(alnum) for _ in range(32))
    if pick == 2:
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    if pick == 3:
        return "ghp_" + "".join(rng.choice(alnum) for _ in range(36))
    if pick == 4:
        return "glpat-" + "".join(rng.choice(alnum) for _ in range(20))
    if pick == 5:
        return "xoxb-" + "".join(rng.choice(string.digits) for _ in range(12)) + "-abcdefghijkl"
    if pick == 6:
        return "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0." + "".join(rng.choice(alnum) for _ in range(20))
    if pick == 7:
        return "AIza" + "".join(rng.choice(alnum + "_-") for _ in range(35))
    if pick == 8:
        return "ann@localhost"  # near miss: no top-level domain
    if pick == 9:
        return rng.choice(["555-123-4567", "078-05-1120", "4111 1111 1111 1111"])  # rules that need decoded values
    return "sk-abc"  # near miss: too short


# What can sit right before or after a planted value: JSON escapes (\n reads as "n" in the text), quotes, word
# characters that veto a token, a \u escape.
_BEFORE = ("", " ", "\n", "\t", "\\", '"', "x", "-", "_", "é", "\x1f", "(", "mailto:")
_AFTER = ("", " ", "\n", "\r", "\\", '"', "x", ".", "-", "\x01", "é", ")", "u")


def _text(rng: random.Random, secrets: bool) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(3, 12))]
    if secrets:
        for _ in range(rng.randrange(1, 3)):
            words.insert(rng.randrange(len(words) + 1),
                         rng.choice(_BEFORE) + _secret(rng) + rng.choice(_AFTER))
    return rng.choice([" ", "", "\n"]).join(words)


def _row(rng: random.Random) -> dict:
    messages = [{"role": rng.choice(["user", "assistant", "tool"]),
                 "parts": [{"type": "text", "content": _text(rng, rng.random() < 0.5)}]}
                for _ in range(rng.randrange(1, 4))]
    row = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": rng.choice(["gpt-4o", "gpt-4o-mini"]),
        "gen_ai.input.messages": json.dumps(messages, ensure_ascii=rng.random() < 0.5),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": _text(rng, rng.random() < 0.3)}]}]),
        "gen_ai.usage.input_tokens": rng.randrange(10, 5000),
        "score": round(rng.random(), 3),
    }
    extra = rng.randrange(10)
    if extra == 0:
        row[_text(rng, True)] = "a key holding a secret"
    elif extra == 1:
        row["db.password"] = _text(rng, False)  # a secret-named key: its whole value goes
    elif extra == 2:
        row["tags"] = [_text(rng, True), {"note": _text(rng, True)}, [_text(rng, True)]]
    elif extra == 3:
        row["nested"] = {"inner": {"text": _text(rng, True), "flag": True, "none": None}}
    elif extra == 4:  # two keys that mask alike merge in a map
        row["ann@example.com"] = 1
        row["bob@example.com"] = 2
    elif extra == 5:
        row["plain"] = _text(rng, True)
    elif extra == 6:  # JSON text held in a string: its fields' quotes are escaped in the row
        row["gen_ai.tool.call.arguments"] = json.dumps({rng.choice(["password", "api_key", "to"]): _text(rng, True),
                                                        "cc": _text(rng, rng.random() < 0.5)})
    elif extra == 7:
        row["gen_ai.tool.call.arguments"] = json.dumps({"aws_secret_access_key": _AWS_SECRET, "note": _text(rng, True)})
    return row


def _rows(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [orjson.dumps(_row(rng)).decode() for _ in range(count)]  # the decoder writes orjson's form


def test_text_form_matches_the_parsed_reference() -> None:
    policy = RedactionPolicy.default()
    masker = json_text_masker(policy)
    taken = masked = 0
    for row in _rows(1500, seed=7):
        expected = redact_json_parsed(policy, row)
        assert _redact_json(policy, row) == expected, row
        fast = masker.mask(row, row.encode("utf-8", "surrogatepass"))
        if fast is not None:
            assert fast == expected, row
            taken += 1
            masked += fast[1] > 0
    # The text form must carry real work, not fall back every time (else this test would prove nothing about it).
    assert taken > 300 and masked > 150, (taken, masked)


def test_log_bodies_match_the_reference() -> None:
    policy = RedactionPolicy.default()
    rng = random.Random(11)
    for _ in range(400):
        body = rng.choice([_text(rng, True), [{"role": "user", "content": _text(rng, True)}],
                           {"message": _text(rng, True)}, 42])
        text = orjson.dumps(body).decode()
        assert _redact_json(policy, text, top_key="body") == redact_json_parsed(policy, text, top_key="body")


def test_secrets_next_to_escapes_are_still_masked() -> None:
    policy = RedactionPolicy.default()
    for before in ("\n", "\t", "\\", '"'):
        row = orjson.dumps({"m": f"mail{before}ann@example.com{before}now",
                            "k": f"{before}sk-proj-{'a1B2' * 8}{before}"}).decode()
        masked, count = _redact_json(policy, row)
        assert "ann@example.com" not in masked and "a1B2a1B2" not in masked and count == 2, masked


def test_other_policies_fall_back_to_the_reference() -> None:
    custom = RedactionPolicy.from_mapping({"patterns": [{"name": "ticket", "regex": r"TCK-\d+"}],
                                           "keys": ["*.internal"], "allow_keys": ["safe.*"]})
    for row in _rows(200, seed=3):
        assert _redact_json(custom, row) == redact_json_parsed(custom, row)


def test_secret_fields_of_json_text_held_in_a_string_are_masked() -> None:
    """A tool call's arguments are JSON text in a string: in the row their quotes read \\", which the secret-field
    and AWS secret rules' screens must still see, else the row would be masked in its text without those rules."""
    policy = RedactionPolicy.default()
    for arguments in ({"password": "hunter2"}, {"api_key": "hunter2", "to": "ann@example.com"},
                      {"db": {"client_secret": "hunter2"}}, {"aws_secret_access_key": _AWS_SECRET},
                      [{"content": "mail ann@example.com", "args": {"password": "hunter2"}}]):
        row = orjson.dumps({"gen_ai.tool.call.arguments": json.dumps(arguments), "n": 1}).decode()
        masked, count = _redact_json(policy, row)
        assert (masked, count) == redact_json_parsed(policy, row)
        assert "hunter2" not in masked and _AWS_SECRET not in masked and "ann@" not in masked, masked


def test_keys_spelled_with_escapes_are_read_from_the_parsed_text() -> None:
    """A key written with \\u escapes ("pass\\u0077ord" is "password") shows no secret-like name in the text, so the
    text form must read the keys from the parsed text (orjson never escapes a letter; other JSON writers may)."""
    policy = RedactionPolicy.default()
    row = '{"pass\\u0077ord":"hunter2","m":"mail ann@example.com"}'
    masked, count = _redact_json(policy, row)
    assert (masked, count) == redact_json_parsed(policy, row)
    assert "hunter2" not in masked and count == 2, masked


def test_secret_named_keys_of_any_value_are_masked_beside_text_masking() -> None:
    """A secret-named key masks its whole value whatever its shape; a number or a list there gives no "key": "value"
    for the secret-field rule's screen, so the masker must still see the name."""
    policy = RedactionPolicy.default()
    for value in (12345, ["hunter2"], {"inner": "hunter2"}, 1.5):
        row = orjson.dumps({"db.password": value, "m": "mail ann@example.com"}).decode()
        masked, count = _redact_json(policy, row)
        assert (masked, count) == redact_json_parsed(policy, row)
        assert "hunter2" not in masked and "12345" not in masked and "1.5" not in masked and count == 2, masked
