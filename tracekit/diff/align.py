"""Global sequence alignment of two step lists (Needleman-Wunsch), so a step one run has and the other lacks lines
up against a gap instead of shifting every later step out of place.

Scores: the same step (kind and name) with the same arguments 4, the same step 3, the same kind of step under
another name (another tool, another model) 1, steps of different kinds -3 (never paired: two gaps cost less), a gap
-1. Ties prefer pairing; where both runs have a lone step, A's comes first (as in a diff). For very long runs (more
than MAX_CELLS cells) the quadratic table is not built: difflib's matching blocks on the step keys give the
alignment instead.
"""

from __future__ import annotations

import difflib
from typing import Sequence, TypeVar

from tracekit.diff.steps import Step

MAX_CELLS = 4_000_000
GAP = -1

S = TypeVar("S", bound=Step)
Pair = tuple["Step | None", "Step | None"]


def score(a: Step, b: Step) -> int:
    """How well two steps correspond (see the module docstring)."""
    if a.key == b.key:
        return 4 if a.arguments == b.arguments else 3
    if a.kind == b.kind:
        return 1
    return -3


def align(a: Sequence[Step], b: Sequence[Step]) -> list[Pair]:
    """The aligned pairs, in order: (step, step), (step, None) for a step only A has, (None, step) only B."""
    if (len(a) + 1) * (len(b) + 1) > MAX_CELLS:
        return _align_by_blocks(a, b)
    rows, cols = len(a) + 1, len(b) + 1
    table = [[0] * cols for _ in range(rows)]
    for i in range(1, rows):
        table[i][0] = i * GAP
    for j in range(1, cols):
        table[0][j] = j * GAP
    for i in range(1, rows):
        above, here, step_a = table[i - 1], table[i], a[i - 1]
        for j in range(1, cols):
            here[j] = max(above[j - 1] + score(step_a, b[j - 1]), above[j] + GAP, here[j - 1] + GAP)
    pairs: list[Pair] = []
    i, j = len(a), len(b)
    while i or j:
        if i and j and table[i][j] == table[i - 1][j - 1] + score(a[i - 1], b[j - 1]):
            pairs.append((a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif j and table[i][j] == table[i][j - 1] + GAP:
            pairs.append((None, b[j - 1]))   # walking backwards: B's lone step lands after A's, as in a diff
            j -= 1
        else:
            pairs.append((a[i - 1], None))
            i -= 1
    pairs.reverse()
    return pairs


def _align_by_blocks(a: Sequence[Step], b: Sequence[Step]) -> list[Pair]:
    matcher = difflib.SequenceMatcher(None, [s.key for s in a], [s.key for s in b], autojunk=False)
    pairs: list[Pair] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            pairs.extend(zip(a[a0:a1], b[b0:b1]))
            continue
        pairs.extend((step, None) for step in a[a0:a1])
        pairs.extend((None, step) for step in b[b0:b1])
    return pairs
