"""The shared deadline heap (`hub.deadlines`): session timers and storage requests both keep
theirs in it. Moving a key over and over is pinned in tests/realtime/test_actor_logic.py."""

from __future__ import annotations

import math

from hub.deadlines import Deadlines


def test_due_keys_come_out_earliest_first_without_the_discarded_ones():
    deadlines: Deadlines[str] = Deadlines()
    for key, deadline in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("gone", 1.5), ("later", 9.0)):
        deadlines.set(key, deadline)
    deadlines.discard("gone")
    deadlines.discard("never set")

    assert deadlines.earliest() == 1.0
    assert deadlines.pop_due(3.0) == ["a", "b", "c"]
    assert (len(deadlines), deadlines.earliest()) == (1, 9.0)
    assert deadlines.pop_due(math.inf) == ["later"]
    assert deadlines.earliest() == math.inf


def test_deadlines_answered_in_order_of_arrival_keep_the_heap_at_its_live_size():
    """Storage requests: each set once, most discarded (answered) before they come due, mostly
    first in, first out. Their dead entries must leave as new ones come, not pile up until a
    sweep."""
    deadlines: Deadlines[int] = Deadlines()
    in_flight = 100
    for i in range(10_000):
        deadlines.set(i, 5.0 + i * 0.001)
        if i >= in_flight:
            deadlines.discard(i - in_flight)
        assert len(deadlines._heap) <= len(deadlines) + 1  # a private attribute: size is the point
    assert len(deadlines) == in_flight
    assert deadlines.pop_due(math.inf) == list(range(10_000 - in_flight, 10_000))
