"""The key watch on trio's autojump clock: it looks every interval, survives a database that
cannot answer, and tells its owner once which organizations' keys it has just forgotten."""

from __future__ import annotations

import uuid

import trio

from hub.actors.keywatch import KeyWatch
from hub.errors import StorageUnavailable


class FakeSealing:
    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.looks: list[float] = []

    async def forget_destroyed(self) -> dict[int, uuid.UUID]:
        self.looks.append(trio.current_time())
        answer = self.answers.pop(0) if self.answers else {}
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_it_looks_every_interval_and_survives_a_failed_look(autojump_clock):
    org = uuid.uuid4()
    sealing = FakeSealing([StorageUnavailable("the database is down"), {7: org}, {}])
    told: list[set[uuid.UUID]] = []

    async def erased(orgs: set[uuid.UUID]) -> None:
        told.append(orgs)

    watch = KeyWatch(sealing, 30.0, on_erased=erased)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(watch.run)
        await trio.sleep(95)
        nursery.cancel_scope.cancel()
    assert [round(t - start) for t in sealing.looks] == [30, 60, 90]
    assert told == [{org}]  # once, from the look after the failed one
