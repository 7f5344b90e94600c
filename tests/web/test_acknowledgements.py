"""Messages that ask for acknowledgement in the web client: a change of plan or a message that
asks for confirmation, sent from the composer; the badge and the board under it, with a Confirm
button for a reader whose organization is pending, updated live in the sender's browser; the
hub's refusals and hostile names shown as text."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, Wedding
from tests.web.hubproc import RestError, Vendor
from tests.web.test_live import acknowledged, messages, open_thread, send

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def org_name(wedding: Wedding, vendor: Vendor) -> str:
    return wedding.hub.call(vendor, "GET", "/me")["organization_name"]


def board_of(page, text: str):
    """The board under the (stored) message that says `text`."""
    return acknowledged(page, text).get_by_role("region", name="Confirmations")


def row(board, organization: str):
    return board.get_by_role("listitem").filter(has_text=organization)


def add_caterer(wedding: Wedding) -> Vendor:
    """A third organization in the wedding, so that one confirmation leaves one pending."""
    caterer = Vendor("Cal Caterer", uuid.uuid4())
    wedding.hub.call(caterer, "GET", "/groups")
    wedding.hub.call(
        wedding.planner,
        "POST",
        f"/groups/{wedding.group_id}",
        {"organization_id": str(caterer.org_id), "vendor_type": "caterer"},
    )
    wedding.hub.call(caterer, "POST", f"/groups/{wedding.group_id}/accept")
    return caterer


def test_a_change_of_plan_is_confirmed_by_the_other_vendor_and_the_sender_sees_it_live(
    open_app, wedding: Wedding
):
    caterer = add_caterer(wedding)
    florists = org_name(wedding, wedding.florist)
    caterers = org_name(wedding, caterer)
    planners = org_name(wedding, wedding.planner)
    planner = open_thread(open_app, wedding, wedding.planner, viewport=DESKTOP)
    florist = open_thread(open_app, wedding, wedding.florist)
    expect(planner.get_by_label("Who is here")).to_contain_text("Fran Florist")
    planner.evaluate("window.sameLoad = true")

    planner.get_by_role("checkbox", name="Change of plan").check()
    expect(planner.get_by_text("Change of plan: every other organization")).to_be_visible()
    expect(planner.get_by_role("checkbox", name="Ask for confirmation")).to_be_checked()
    send(planner, "Rain: the ceremony moves into the barn at 4pm")

    text = "the ceremony moves into the barn"
    shown = acknowledged(florist, text)
    expect(shown).to_contain_text("Change of plan")
    board = board_of(florist, text)
    expect(board).to_contain_text("Waiting for 2 of 2 organizations")
    expect(row(board, florists)).to_contain_text("Pending")
    expect(row(board, caterers)).to_contain_text("Pending")
    expect(row(board, planners)).to_contain_text("Sent it")
    sender_board = board_of(planner, text)
    expect(sender_board).to_contain_text("Waiting for 2 of 2 organizations")
    # The sender's organization confirms nothing; the composer is back to a plain message.
    expect(sender_board.get_by_role("button")).to_have_count(0)
    expect(planner.get_by_role("checkbox", name="Change of plan")).not_to_be_checked()
    expect(planner.get_by_role("checkbox", name="Ask for confirmation")).not_to_be_checked()

    board.get_by_role("button", name=f"Confirm for {florists}").click()

    expect(board.get_by_text("Confirmed by you", exact=True)).to_be_visible()
    expect(board.get_by_role("button")).to_have_count(0)
    expect(board).to_contain_text("Waiting for 1 of 2 organizations")
    # The planner's board turns without a reload.
    expect(row(sender_board, florists)).to_contain_text("Confirmed by Fran Florist")
    expect(row(sender_board, caterers)).to_contain_text("Pending")
    expect(sender_board).to_contain_text("Waiting for 1 of 2 organizations")
    assert planner.evaluate("window.sameLoad") is True

    stored = wedding.history(wedding.planner)
    assert [(m["kind"], m["requires_ack"]) for m in stored] == [("change", True)]
    hub_board = wedding.hub.call(
        wedding.planner, "GET", f"/threads/{wedding.thread_id}/messages/1/acknowledgements"
    )
    states = {e["org_name"]: (e["state"], e.get("user_name")) for e in hub_board["organizations"]}
    assert states[florists] == ("acknowledged", "Fran Florist")
    assert hub_board["pending"] == 1
    assert planner.errors == [] and florist.errors == []


def test_a_message_that_asks_for_confirmation_has_no_confirm_button_for_its_sender(
    open_app, wedding: Wedding
):
    florists = org_name(wedding, wedding.florist)
    planners = org_name(wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    planner = open_thread(open_app, wedding, wedding.planner)

    ask = florist.get_by_role("checkbox", name="Ask for confirmation")
    ask.focus()
    florist.keyboard.press("Space")  # from the keyboard, as any control of the composer
    expect(ask).to_be_checked()
    expect(florist.get_by_text("Every other organization of the wedding is asked")).to_be_visible()
    florist.get_by_role("textbox", name="Message").fill("Can the van park at gate B?")
    florist.get_by_role("textbox", name="Message").press("Enter")

    text = "Can the van park at gate B?"
    expect(acknowledged(florist, text)).to_contain_text("Asks for confirmation")
    own = board_of(florist, text)
    expect(row(own, florists)).to_contain_text("Sent it")
    expect(row(own, planners)).to_contain_text("Pending")
    expect(own).to_contain_text("Waiting for 1 of 1 organization")
    expect(own.get_by_role("button")).to_have_count(0)
    expect(ask).not_to_be_checked()

    expect(acknowledged(planner, text)).to_contain_text("Asks for confirmation")
    board = board_of(planner, text)
    board.get_by_role("button", name=f"Confirm for {planners}").click()
    expect(board.get_by_text("Confirmed by you", exact=True)).to_be_visible()
    expect(board.get_by_text("Confirmed", exact=True)).to_be_visible()
    expect(row(own, planners)).to_contain_text("Confirmed by Pat Planner")
    expect(own).not_to_contain_text("Waiting")
    stored = wedding.history(wedding.planner)
    assert [(m["kind"], m["requires_ack"]) for m in stored] == [("text", True)]
    assert florist.errors == [] and planner.errors == []


def test_a_board_loaded_with_the_history_shows_who_confirmed_and_a_colleague_sees_it(
    open_app, wedding: Wedding
):
    florists = org_name(wedding, wedding.florist)
    wedding.hub.call(
        wedding.planner,
        "POST",
        f"/threads/{wedding.thread_id}",
        {"kind": "change", "body": "Dinner starts at 7pm"},
    )
    wedding.hub.call(wedding.florist, "POST", f"/threads/{wedding.thread_id}/messages/1/ack")
    # Another user of the florist's organization: it has confirmed already, by Fran.
    colleague = Vendor("Flo Assistant", wedding.florist.org_id, role="vendor")
    page = open_thread(open_app, wedding, colleague)

    board = board_of(page, "Dinner starts at 7pm")
    expect(row(board, florists)).to_contain_text("Confirmed by Fran Florist")
    expect(board.get_by_text("Confirmed by Fran Florist", exact=True)).to_be_visible()
    expect(board.get_by_role("button")).to_have_count(0)
    expect(board.get_by_text("Confirmed", exact=True)).to_be_visible()
    assert page.errors == []


def test_a_confirmation_the_hub_refuses_shows_its_reason(open_app, wedding: Wedding):
    florists = org_name(wedding, wedding.florist)
    wedding.hub.call(
        wedding.planner,
        "POST",
        f"/threads/{wedding.thread_id}",
        {"kind": "change", "body": "Photos at the lake instead"},
    )
    florist = open_thread(open_app, wedding, wedding.florist)
    board = board_of(florist, "Photos at the lake instead")
    confirm = board.get_by_role("button", name=f"Confirm for {florists}")
    expect(confirm).to_be_visible()
    wedding.hub.call(wedding.planner, "DELETE", f"/threads/{wedding.thread_id}")  # archived
    with pytest.raises(RestError) as refused:
        wedding.hub.call(
            Vendor("Other Florist", wedding.florist.org_id),
            "POST",
            f"/threads/{wedding.thread_id}/messages/1/ack",
        )
    reason = json.loads(refused.value.body)["error"]["message"]

    confirm.click()
    expect(board.get_by_role("alert")).to_have_text(f"Could not confirm: {reason}")
    expect(row(board, florists)).to_contain_text("Pending")
    assert florist.errors == []


def test_confirmations_given_while_offline_show_once_back(open_app, wedding: Wedding):
    florists = org_name(wedding, wedding.florist)
    planner = open_thread(open_app, wedding, wedding.planner)
    planner.get_by_role("checkbox", name="Change of plan").check()
    send(planner, "Cake arrives at noon")
    board = board_of(planner, "Cake arrives at noon")
    expect(row(board, florists)).to_contain_text("Pending")

    planner.context.set_offline(True)
    expect(planner.get_by_role("status")).to_contain_text("Offline")
    wedding.hub.call(wedding.florist, "POST", f"/threads/{wedding.thread_id}/messages/1/ack")
    planner.context.set_offline(False)
    expect(planner.get_by_role("status")).to_have_text("Live")
    expect(row(board, florists)).to_contain_text("Confirmed by Fran Florist")
    expect(board).not_to_contain_text("Waiting")
    assert planner.errors == []


def test_hostile_names_and_bodies_show_as_text_on_the_board(open_app, wedding: Wedding):
    mallory = Vendor('<b onmouseover="window.pwned=3">Mal</b>', wedding.florist.org_id)
    florists = org_name(wedding, wedding.florist)
    planner = open_thread(open_app, wedding, wedding.planner)
    dialogs = []
    planner.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    planner.get_by_role("checkbox", name="Change of plan").check()
    send(planner, HOSTILE)
    expect(acknowledged(planner, HOSTILE)).to_contain_text("Change of plan")
    seq = wedding.history(wedding.planner)[-1]["seq"]

    wedding.hub.call(mallory, "POST", f"/threads/{wedding.thread_id}/messages/{seq}/ack")

    board = board_of(planner, HOSTILE)
    expect(row(board, florists)).to_contain_text(
        'Confirmed by <b onmouseover="window.pwned=3">Mal</b>'
    )
    log = planner.get_by_role("log", name="Messages")
    assert log.locator("img, script, b").count() == 0
    assert planner.evaluate("window.pwned") is None
    assert dialogs == []
    assert planner.errors == []
    # The hub's message came through as written.
    assert messages(planner).count() == 1
