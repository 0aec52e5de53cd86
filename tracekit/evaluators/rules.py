"""Continuous evaluation rules (`tracekit collect --evaluation-rules FILE`), after Foundry's continuous evaluation
rule: which evaluators, for which agent's responses, on what share of them, at most how many an hour.

    [judge]                                  # for the built-in evaluators; the key comes from the environment
    endpoint = "https://my-aoai.openai.azure.com"
    model = "gpt-4o"

    [[rule]]
    name = "planner quality"
    evaluators = ["coherence", "intent_resolution", "my_checks:no_apologies"]
    agent = "planner"                        # optional: only this agent's responses
    sample = 0.2                             # share of responses evaluated (by response id, as tracekit evaluate)
    max_per_hour = 100                       # evaluations of this rule per hour; beyond it responses are skipped
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracekit.errors import TracekitError
from tracekit.toml_files import read_toml
from tracekit.evaluators.builtin import BUILTIN, Evaluator, make_evaluators
from tracekit.evaluators.judge import judge_from

_RULE_KEYS = {"name", "evaluators", "agent", "sample", "max_per_hour"}
_JUDGE_KEYS = {"endpoint", "model", "api_version"}


class EvaluationRuleError(TracekitError):
    """A continuous evaluation rule file that cannot be used as written."""


@dataclass
class EvaluationRule:
    name: str
    evaluators: list[Evaluator]
    agent: str | None = None
    sample: float = 1.0
    max_per_hour: int = 100


def load_evaluation_rules(path: str | Path) -> list[EvaluationRule]:
    """Read and check the file, and set up its evaluators (so a missing package or judge fails at start)."""
    data = read_toml(path, EvaluationRuleError)
    judge_table: dict[str, Any] = data.get("judge", {})
    unknown = set(judge_table) - _JUDGE_KEYS
    if unknown:
        raise EvaluationRuleError(f"{path}: [judge] has unknown key(s) {', '.join(sorted(unknown))}")
    raw_rules = data.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise EvaluationRuleError(f"{path}: no [[rule]] tables")
    names = [name for raw in raw_rules for name in raw.get("evaluators", [])]
    judge = None
    if any(name in BUILTIN for name in names):
        judge = judge_from(judge_table.get("endpoint"), judge_table.get("model"), None, judge_table.get("api_version"))
    return [_rule(raw, judge, f"{path}: rule #{index}") for index, raw in enumerate(raw_rules, start=1)]


def _rule(raw: dict[str, Any], judge: Any, where: str) -> EvaluationRule:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise EvaluationRuleError(f"{where}: `name` is missing")
    where = f"{where.split(': ')[0]}: rule {name!r}"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise EvaluationRuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    evaluators = raw.get("evaluators")
    if not isinstance(evaluators, list) or not evaluators or not all(isinstance(e, str) for e in evaluators):
        raise EvaluationRuleError(f"{where}: `evaluators` must be a list of evaluator names")
    sample = raw.get("sample", 1.0)
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 < sample <= 1:
        raise EvaluationRuleError(f"{where}: `sample` must be a share between 0 (exclusive) and 1")
    cap = raw.get("max_per_hour", 100)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise EvaluationRuleError(f"{where}: `max_per_hour` must be a whole number of at least 1")
    agent = raw.get("agent")
    return EvaluationRule(name, make_evaluators(evaluators, judge), str(agent) if agent else None, float(sample), cap)
