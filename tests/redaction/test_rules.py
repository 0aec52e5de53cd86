"""The built-in rules for what people paste into agents: each one masks the real shape and leaves a near miss alone,
and the fast screen flags every text a rule masks (in a JSON column and in a plain one)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.redaction import RedactionPolicy
from tracekit.redaction.screen import flag_rows, quote, rows_matching

POLICY = RedactionPolicy.default()

PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
               "aFDrBz9vFqU4yYbNdMDOQgIiwZtZxwXPtcS+4QkJ1lN7Qy3QzEXAMPLE\n-----END RSA PRIVATE KEY-----")

# (rule, a text holding the real shape, the secret itself, a near miss that must stay as it is)
CASES = [
    ("aws_access_key", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE",
     "the id AKIAIOSFODNN7EXAMPL is one character short"),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 of the aws sdk"),
    ("aws_secret_key", '{"AwsSecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "checksum wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY (no aws name)"),
    ("github_token", "git clone https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r",
     "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "branch ghp_short and the ghp_ prefix alone"),
    ("github_token", "GITHUB_TOKEN=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
     "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP", "see github_pat_docs"),
    ("gitlab_token", "PRIVATE-TOKEN: glpat-xJ8eZ2vYq4Lm9Tn0Rb3K", "glpat-xJ8eZ2vYq4Lm9Tn0Rb3K",
     "the glpat-short prefix and glossary-terms-of-the-project"),
    ("slack_token", "SLACK_BOT_TOKEN=xoxb-2048193712-4829104718-AbCdEfGhIjKlMnOpQrStUvWx",
     "xoxb-2048193712-4829104718-AbCdEfGhIjKlMnOpQrStUvWx", "the xoxb- prefix and xoxb-123"),
    ("slack_webhook", "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX now",
     "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "read https://api.slack.com/messaging/webhooks first"),
    ("private_key", f"here is my key:\n{PRIVATE_KEY}\nthanks", PRIVATE_KEY,
     "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
     "-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
     "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----"),
    ("jwt", "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
     "a JWT header alone: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"),
    ("us_ssn", "my SSN is 078-05-1120, keep it safe", "078-05-1120",
     "never issued: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000; too long: 123-45-67890"),
    ("iban", "pay to DE89 3704 0044 0532 0130 00 today", "DE89 3704 0044 0532 0130 00",
     "wrong check digits: DE88 3704 0044 0532 0130 00"),
    ("iban", "IBAN GB82WEST12345698765432", "GB82WEST12345698765432", "order GB82WEST12345698765433 shipped"),
    ("secret_field", '{"client_secret": "s3cr3t-value", "user": "ann"}', "s3cr3t-value",
     '{"secretary": "Ann Lee", "public_key": "abc"}'),
]


@pytest.mark.parametrize(("rule", "text", "secret", "near_miss"), CASES, ids=[case[0] for case in CASES])
def test_each_rule_masks_the_real_shape_and_leaves_a_near_miss(rule: str, text: str, secret: str,
                                                               near_miss: str) -> None:
    masked, count = POLICY.redact_text(text)
    assert secret not in masked and f"[REDACTED:{rule}]" in masked and count >= 1
    assert POLICY.redact_text(near_miss) == (near_miss, 0)


@pytest.mark.parametrize(("rule", "text", "secret", "near_miss"), CASES, ids=[case[0] for case in CASES])
def test_the_screen_flags_every_masked_text(rule: str, text: str, secret: str, near_miss: str) -> None:
    rows = [json.dumps({"clean": "nothing here"}), json.dumps({"note": text}), json.dumps(["plain"])]
    assert 1 in flag_rows(POLICY, rows)
    # Plain columns (span names, messages) are searched end to end in one buffer, each row quoted; a secret at the
    # very start or end of a row, next to a row ending or starting with a word character, is still flagged.
    for row in [text] + ([secret] if POLICY.redact_text(secret)[1] else []):
        assert flag_rows(POLICY, quote(pa.array(["word", row, "word"])), quoted=True) == [1]


@pytest.mark.parametrize("key", ["client_secret", "secret_token", "private_key", "aws_secret_access_key",
                                 "session_token", "db.password", "http.request.header.x-api-key", "app.passphrase",
                                 "SECRET_KEY", "credentials", "app.id_token"])
def test_secret_named_keys_mask_their_whole_value(key: str) -> None:
    assert POLICY.redact_value_counted(key, "opaque-value-123") == ("[REDACTED:secret_key]", 1)
    assert POLICY.redact_value_counted(key, {"nested": 1}) == ("[REDACTED:secret_key]", 1)


@pytest.mark.parametrize("key", ["gen_ai.usage.input_tokens", "secretary", "max_tokens", "tokenizer",
                                 "public_key", "keyboard_layout", "gen_ai.request.model", "password_policy"])
def test_keys_that_only_look_close_are_not_masked(key: str) -> None:
    assert POLICY.redact_value_counted(key, "opaque-value-123") == ("opaque-value-123", 0)


def test_values_nested_in_lists_and_maps_and_keys_themselves_are_masked() -> None:
    key = "sk-proj-" + "A1b2C3d4" * 4
    value = [{"role": "user", "content": f"my key {key}"}, [[key]], {"password": "hunter2"}]
    masked, count = POLICY.redact_value_counted("gen_ai.input.messages", value)
    assert masked == [{"role": "user", "content": "my key [REDACTED:openai_key]"}, [["[REDACTED:openai_key]"]],
                      {"password": "[REDACTED:secret_key]"}] and count == 3
    masked_map, count = POLICY.redact_attributes({f"header {key}": "x"})
    assert masked_map == {"header [REDACTED:openai_key]": "x"} and count == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.-+_%@ x9", max_size=60))
def test_the_email_rule_finds_what_a_scan_of_the_pattern_finds(text: str) -> None:
    """EmailRule starts from each "@" instead of scanning; it must mask exactly what the pattern's own scan masks."""
    (rule,) = [rule for rule in POLICY.rules if rule.name == "email"]
    assert rule.apply(text) == rule.regex.subn("[REDACTED:email]", text)


def test_rows_matching_finds_each_row_of_a_chunked_column_with_nulls_and_empty_rows():
    regex = re2.compile(b"needle")
    column = pa.chunked_array([pa.array(["", "a needle", None, "hay", "needle"]),
                               pa.array(["needle needle", "", "x"]).slice(1), pa.array([], pa.string()),
                               pa.array([None, "hay and a needle"])])
    assert rows_matching(regex, column) == [1, 4, 8]


@pytest.mark.parametrize("escape", ["\n", "\t", "\r", "\x1f", "\\", "/"])
@pytest.mark.parametrize("secret", ["555-123-4567", "+15551234567", "4111 1111 1111 1111", "078-05-1120",
                                    "sk-proj-" + "a1B2" * 8, "ann@example.com"])
def test_screen_flags_a_secret_right_after_a_json_escape(escape: str, secret: str) -> None:
    # In JSON text a newline is the two characters \n: a guard that wants no word character before a phone number
    # must still let it through there.
    value = f"call{escape}{secret}"
    assert POLICY.redact_value("note", value) != value
    assert flag_rows(POLICY, pa.array([json.dumps({"note": value})])) == [0]
