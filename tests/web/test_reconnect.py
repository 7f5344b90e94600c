"""The hub goes away and comes back: the page says it is reconnecting and when it will try
again, keeps what was written meanwhile, and recovers the thread with `since_seq`."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.conftest import Wedding
from tests.web.test_live import acknowledged, messages, open_thread, send


def test_a_hub_restart_shows_reconnecting_then_recovers_everything(open_app, wedding_both: Wedding):
    wedding = wedding_both
    florist = open_thread(open_app, wedding, wedding.florist)
    send(florist, "before the restart")
    # Stored before the hub stops (a pending copy is an article too, and would be sent after).
    expect(acknowledged(florist, "before the restart")).to_have_count(1)

    wedding.hub.stop()
    status = florist.get_by_role("status")
    expect(status).to_contain_text(re.compile(r"Reconnecting in \d+ s"))
    expect(status.get_by_role("button", name="Retry now")).to_be_visible()
    send(florist, "written while the hub was down")
    expect(messages(florist).filter(has_text="written while the hub was down")).to_contain_text(
        "Pending"
    )

    wedding.hub.start()
    for n in (1, 2):
        wedding.post(wedding.planner, f"after the restart {n}")
    expect(status).to_have_text("Live", timeout=40000)

    for text in (
        "before the restart",
        "written while the hub was down",
        "after the restart 1",
        "after the restart 2",
    ):
        expect(messages(florist).filter(has_text=text)).to_have_count(1)
    expect(messages(florist)).to_have_count(4)
    expect(florist.locator("article.pending")).to_have_count(0)
    bodies = [m["body"] for m in wedding.history(wedding.planner)]
    assert sorted(bodies) == sorted(
        [
            "before the restart",
            "written while the hub was down",
            "after the restart 1",
            "after the restart 2",
        ]
    )
    assert bodies[0] == "before the restart"
