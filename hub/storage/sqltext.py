"""Writing SQL text from fixed fragments: values are bound, and only their `$n` placeholders ever
enter the text. `placeholders` is the one writer of placeholder lists (an `IN (...)` list, the
rows of a multi-row VALUES); `Binder` hands them out while it collects the values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def placeholders(count: int, start: int = 1) -> str:
    """`$start, $start+1, ...`: `count` placeholders, for an IN list or one row of VALUES."""
    return ", ".join(f"${i}" for i in range(start, start + count))


class Binder:
    """Collects bound values and hands out their `$n` placeholders, so optional filters can be
    appended as fixed SQL fragments without ever formatting a value into the text."""

    def __init__(self, *initial: Any) -> None:
        self.args: list[Any] = list(initial)

    def __call__(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def many(self, values: Sequence[Any]) -> str:
        """Bind each of `values`; their placeholders as a list, for `IN (...)`."""
        start = len(self.args) + 1
        self.args.extend(values)
        return placeholders(len(values), start)
