"""Masking secrets and personal data in everything a sender controls, before storage and before export.

One rule set (rules.py), one policy with the one value function (policy.py), one fast screen (screen.py, with the
RE2 forms of the rules in re2_forms.py), applied to store-shaped tables by columns.py (the collector, offline import,
every exporter) and to SDK spans and log records by sdk.py (the in-process processors). What is covered and what is
not: SECURITY.md.
"""

from tracekit.redaction.policy import (ENV_REDACTION, ENV_REDACTION_FILE, JsonPathRule, RedactionError,
                                       RedactionPolicy, policy_from_options)
from tracekit.redaction.rules import BUILTIN_RULE_NAMES, SECRET_KEY_NAMES, NumberRule, PatternRule, mask_text

__all__ = [
    "BUILTIN_RULE_NAMES", "ENV_REDACTION", "ENV_REDACTION_FILE", "JsonPathRule", "NumberRule", "PatternRule",
    "RedactionError", "RedactionPolicy", "SECRET_KEY_NAMES", "mask_text", "policy_from_options",
]
