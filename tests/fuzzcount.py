"""How many generated inputs the fuzz tests sent through each door, printed at the end of a run.

A property test's example count is a setting, not a fact: a test that stops early, or whose
strategy is filtered, tries fewer. Each fuzz test counts what it really sent here, and the
suite's summary shows the totals (tests/conftest.py), so the figure quoted for a door is the one
that ran.
"""

from __future__ import annotations

from collections import Counter

import hypothesis

tried: Counter[str] = Counter()


def count(door: str, n: int = 1) -> None:
    """`n` more inputs sent through `door` (for example "REST bodies")."""
    tried[door] += n


def against_a_server(examples: int) -> hypothesis.settings:
    """Settings for a fuzz test that sends its inputs to a live server: the same inputs every
    run (derandomized, no example database), no deadline (a request takes what it takes) and no
    health checks (slow generation is the server's time, not the strategy's)."""
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
