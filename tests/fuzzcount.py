"""How many generated inputs the fuzz tests sent through each door, printed at the end of a run.

A property test's example count is a setting, not a fact: a test that stops early, or whose
strategy is filtered, tries fewer. Each fuzz test counts what it really sent here, and the
suite's summary shows the totals (tests/conftest.py), so the figure quoted for a door is the one
that ran.
"""

from __future__ import annotations

from collections import Counter

tried: Counter[str] = Counter()


def count(door: str, n: int = 1) -> None:
    """`n` more inputs sent through `door` (for example "REST bodies")."""
    tried[door] += n
