"""The evaluators: Foundry's built-in ones through Microsoft's azure-ai-evaluation, and the user's own.

A built-in evaluator is given the item in the form its documentation asks for: the query/response evaluators
(relevance, coherence) the last user message and the final answer as text, fluency the answer alone, the agent
evaluators (intent_resolution, task_adherence) the agent messages and tool definitions, tool_call_accuracy the
same when the response made tool calls, groundedness the retrieved context when the trace recorded one. An item an
evaluator cannot judge (no tool calls, no context) is not applicable, and counted as such.

A user evaluator is `package.module:function`, called with the conversation (Item.as_conversation()) and
returning a score, a (score, label, explanation) tuple, a dict with those keys, or None for not applicable.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

from tracekit.errors import TracekitError
from tracekit.evaluators.items import Item
from tracekit.evaluators.judge import Judge, JudgeNotConfigured

EXTRA_HINT = "install it with: pip install 'tracekit-agents[evaluation]'"

# name -> (azure.ai.evaluation class, how the item is passed)
BUILTIN: dict[str, tuple[str, str]] = {
    "relevance": ("RelevanceEvaluator", "text"),
    "coherence": ("CoherenceEvaluator", "text"),
    "fluency": ("FluencyEvaluator", "answer"),
    "intent_resolution": ("IntentResolutionEvaluator", "agent"),
    "task_adherence": ("TaskAdherenceEvaluator", "agent"),
    "tool_call_accuracy": ("ToolCallAccuracyEvaluator", "tools"),
    "groundedness": ("GroundednessEvaluator", "context"),
}


class EvaluatorError(TracekitError):
    """An evaluator that cannot be set up (unknown name, missing package, a user function that does not load)."""


class NotApplicable(Exception):
    """This evaluator cannot judge this item (the reason says why)."""


class VerdictUnreadable(Exception):
    """The judge answered, but no score could be read from its answer (retried, then counted as failed)."""


@dataclass
class Verdict:
    score: float | None
    label: str | None = None
    explanation: str | None = None


@dataclass
class Evaluator:
    name: str
    judge: Callable[[Item], Verdict]
    needs_content: bool = True


def make_evaluators(names: list[str], judge: Judge | None) -> list[Evaluator]:
    """The evaluators named on the command line (built-in names and `module:function` references)."""
    evaluators = []
    for name in names:
        if ":" in name:
            evaluators.append(_user_evaluator(name))
        elif name in BUILTIN:
            if judge is None:
                raise JudgeNotConfigured(
                    f"the built-in evaluator {name!r} needs a judge model: give --judge-endpoint and --judge-model")
            evaluators.append(_builtin_evaluator(name, judge))
        else:
            raise EvaluatorError(f"unknown evaluator {name!r}: use one of {', '.join(BUILTIN)} or "
                                 "package.module:function")
    return evaluators


def _builtin_evaluator(name: str, judge: Judge) -> Evaluator:
    class_name, form = BUILTIN[name]
    # The package logs every judge retry to stdout on loggers of its own; tracekit reports failures itself.
    os.environ.setdefault("PF_LOGGING_LEVEL", "CRITICAL")
    try:
        module = importlib.import_module("azure.ai.evaluation")
    except ImportError as error:
        raise EvaluatorError(f"the built-in evaluators need Microsoft's azure-ai-evaluation package "
                             f"({error.name or error}); {EXTRA_HINT}") from None
    evaluator = getattr(module, class_name)(model_config=judge.model_config(), credential=judge.credential())
    result_key = getattr(evaluator, "_RESULT_KEY", name)

    def run(item: Item) -> Verdict:
        return _read_result(evaluator(**_arguments(form, item)), result_key)

    return Evaluator(name, run)


def _arguments(form: str, item: Item) -> dict[str, Any]:
    if form == "text":
        return {"query": item.query_text, "response": item.response_text}
    if form == "answer":
        return {"response": item.response_text}
    if form == "context":
        if not item.context:
            raise NotApplicable("no retrieved context in the trace")
        return {"query": item.query_text, "response": item.response_text, "context": item.context}
    arguments: dict[str, Any] = {"query": item.query, "response": item.response}
    if form == "tools":
        if not item.tool_calls:
            raise NotApplicable("the response made no tool calls")
        if not item.tool_definitions:
            raise NotApplicable("the model call recorded no tool definitions")
    if item.tool_definitions:
        arguments["tool_definitions"] = item.tool_definitions
    return arguments


def _read_result(result: dict[str, Any], key: str) -> Verdict:
    score = result.get(key, result.get(f"{key}_score"))
    try:
        score = float(score)
    except (TypeError, ValueError):
        score = math.nan
    if math.isnan(score):
        raise VerdictUnreadable(f"no {key} score in the judge's answer")
    label = result.get(f"{key}_result")
    return Verdict(score, str(label) if label is not None else None, result.get(f"{key}_reason"))


def _user_evaluator(reference: str) -> Evaluator:
    module_name, _, function_name = reference.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise EvaluatorError(f"cannot load the evaluator {reference!r}: {error}") from None
    if not callable(function):
        raise EvaluatorError(f"the evaluator {reference!r} is not callable")

    def run(item: Item) -> Verdict:
        return _user_verdict(function(item.as_conversation()), reference)

    return Evaluator(function_name, run)


def _user_verdict(value: Any, reference: str) -> Verdict:
    if value is None:
        raise NotApplicable(f"{reference} returned None")
    if isinstance(value, dict):
        return Verdict(_number(value.get("score"), reference), value.get("label"), value.get("explanation"))
    if isinstance(value, tuple):
        score, label, explanation = (list(value) + [None, None])[:3]
        return Verdict(_number(score, reference), label, explanation)
    return Verdict(_number(value, reference))


def _number(value: Any, reference: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VerdictUnreadable(f"{reference} returned a score that is not a number: {value!r}")
    return float(value)
