"""A user evaluator, loaded by `tracekit evaluate --evaluator tests.evaluators.user_checks:no_apologies`."""


def no_apologies(conversation: dict) -> tuple[float, str, str] | None:
    """1.0 when the final answer does not apologise, 0.0 when it does; not applicable without an answer."""
    answer = conversation["response_text"]
    if not answer:
        return None
    sorry = "sorry" in answer.lower() or "apolog" in answer.lower()
    return (0.0 if sorry else 1.0), ("fail" if sorry else "pass"), f"{len(conversation['query'])} query messages"
