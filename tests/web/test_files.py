"""A thread's Files panel in the web client: the files sent in a thread, newest first, with
their thumbnails and downloads, a page at a time, following the thread while it is open; names
and the hub's refusals shown as text; opened and closed from the keyboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, PHONE, Wedding
from tests.web.hubproc import RestError, Vendor
from tests.web.test_attachments import attach, png
from tests.web.test_live import acknowledged, open_thread, send

HOSTILE_NAME = "<img src=x onerror=alert(1)>.txt"
PANEL_PAGE = 20  # files a page of the panel lists (hub/web/js/files.js)


def files_button(page):
    return page.get_by_role("button", name="Files", exact=True)


def open_files(page):
    files_button(page).click()
    panel = page.get_by_role("dialog", name="Files")
    expect(panel).to_be_visible()
    return panel


def shared(panel):
    return panel.get_by_role("list", name="Files of this thread").get_by_role("listitem")


def names(panel) -> list[str]:
    return shared(panel).locator(".name").all_inner_texts()


def send_files(wedding: Wedding, vendor: Vendor, files: list[tuple[str, bytes, str]]) -> None:
    """Files uploaded and sent in one message over REST, as the web client does it."""
    ids = [wedding.hub.upload(vendor, wedding.thread_id, *file)["id"] for file in files]
    wedding.hub.call(
        vendor,
        "POST",
        f"/threads/{wedding.thread_id}",
        {"kind": "attachment", "attachment_ids": ids},
    )


def test_the_other_vendor_sees_the_threads_files_with_thumbnails_and_downloads_them(
    open_app, wedding: Wedding, tmp_path: Path
):
    photo = png(tmp_path, "arch.png", (400, 300))
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"Peonies by 2pm\nArch at 3pm\n")
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist, viewport=DESKTOP)
    expect(files_button(florist)).to_have_attribute("aria-expanded", "false")

    attach(planner, photo, notes)
    expect(planner.locator(".chip.done")).to_have_count(2)
    send(planner, "The arch and the timings")
    expect(acknowledged(florist, "The arch and the timings")).to_have_count(1)

    panel = open_files(florist)
    expect(files_button(florist)).to_have_attribute("aria-expanded", "true")
    expect(shared(panel)).to_have_count(2)
    assert sorted(names(panel)) == ["arch.png", "notes.txt"]
    text_row = shared(panel).filter(has_text="notes.txt")
    expect(text_row).to_contain_text("27 B")
    expect(text_row).to_contain_text("Pat Planner")
    photo_row = shared(panel).filter(has_text="arch.png")
    expect(photo_row).to_contain_text("kB")
    thumbnail = photo_row.locator("img")
    expect(thumbnail).to_have_attribute("src", re.compile(r"^blob:"))
    assert thumbnail.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    expect(text_row.locator("img")).to_have_count(0)  # a text file has no thumbnail

    with florist.expect_download() as waiting:
        text_row.get_by_role("button", name="Download notes.txt").click()
    download = waiting.value
    assert download.suggested_filename == "notes.txt"
    assert Path(download.path()).read_bytes() == notes.read_bytes()

    url = thumbnail.get_attribute("src")
    panel.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()
    expect(files_button(florist)).to_have_attribute("aria-expanded", "false")
    # Closed, the panel lets its thumbnails go (the policy allows blob: for images alone).
    loads = """url => new Promise(done => {
        const img = new Image();
        img.onload = () => done('kept');
        img.onerror = () => done('revoked');
        img.src = url;
    })"""
    assert florist.evaluate(loads, url) == "revoked"
    assert florist.errors == []


def test_load_more_brings_the_older_files_once_each(open_app, wedding: Wedding):
    count = PANEL_PAGE + 5
    files = [(f"note-{n:02d}.txt", f"note {n}\n".encode(), "text/plain") for n in range(count)]
    for start in range(0, count, 10):  # at most 10 files a message
        send_files(wedding, wedding.planner, files[start : start + 10])
    newest_first = [name for name, _, _ in reversed(files)]
    page = open_thread(open_app, wedding, wedding.florist)

    panel = open_files(page)
    expect(shared(panel)).to_have_count(PANEL_PAGE)
    assert names(panel) == newest_first[:PANEL_PAGE]
    more = panel.get_by_role("button", name="Load more")
    more.click()
    expect(shared(panel)).to_have_count(count)
    assert names(panel) == newest_first
    expect(more).to_be_hidden()
    # The oldest file's message is not on the thread's page, and its sender is still named.
    expect(shared(panel).filter(has_text="note-00.txt")).to_contain_text("Pat Planner")
    assert page.errors == []


def test_a_file_sent_while_the_panel_is_open_appears_in_it(
    open_app, wedding: Wedding, tmp_path: Path
):
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)
    panel = open_files(florist)
    expect(panel.get_by_text("No files shared in this thread yet")).to_be_visible()
    florist.evaluate("window.sameLoad = true")

    order = tmp_path / "order.csv"
    order.write_bytes(b"stem,count\npeony,120\n")
    attach(planner, order)
    expect(planner.locator(".chip.done")).to_have_count(1)
    send(planner, "The order")
    expect(shared(panel)).to_have_count(1)
    expect(shared(panel)).to_contain_text("order.csv")
    expect(panel.get_by_text("No files shared in this thread yet")).to_be_hidden()

    attach(planner, png(tmp_path, "marquee.png"))
    expect(planner.locator(".chip.done")).to_have_count(1)
    send(planner, "The marquee")
    expect(shared(panel)).to_have_count(2)
    assert names(panel) == ["marquee.png", "order.csv"]
    expect(shared(panel).first.locator("img")).to_have_attribute("src", re.compile(r"^blob:"))
    assert florist.evaluate("window.sameLoad") is True
    assert florist.errors == []


def test_a_filename_made_of_html_shows_as_its_characters(open_app, wedding: Wedding):
    florist = open_thread(open_app, wedding, wedding.florist)
    florist.locator(".composer input[type=file]").set_input_files(
        [{"name": HOSTILE_NAME, "mimeType": "text/plain", "buffer": b"just text\n"}]
    )
    expect(florist.locator(".chip.done")).to_have_count(1)
    send(florist, "a strange name")
    expect(acknowledged(florist, "a strange name")).to_have_count(1)
    planner = open_thread(open_app, wedding, wedding.planner, viewport=PHONE)
    dialogs = []
    planner.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    panel = open_files(planner)
    expect(shared(panel)).to_have_count(1)
    expect(shared(panel).locator(".name")).to_have_text(HOSTILE_NAME)
    expect(panel.get_by_role("button", name=f"Download {HOSTILE_NAME}")).to_be_visible()
    assert panel.locator("img").count() == 0
    # On a phone the panel is the screen, and nothing in it is wider.
    assert planner.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert dialogs == []


def test_the_hubs_refusal_shows_in_the_panel_as_text(open_app, wedding: Wedding):
    florist = open_thread(open_app, wedding, wedding.florist)
    wedding.hub.call(
        wedding.planner, "DELETE", f"/groups/{wedding.group_id}/members/{wedding.florist.org_id}"
    )
    expect(florist.get_by_text("You no longer have access to this thread.")).to_be_visible()
    with pytest.raises(RestError) as refused:
        wedding.hub.call(wedding.florist, "GET", f"/threads/{wedding.thread_id}/attachments")
    assert refused.value.status == 404
    reason = json.loads(refused.value.body)["error"]["message"]

    panel = open_files(florist)
    expect(panel.get_by_role("alert")).to_have_text(f"Could not load the files: {reason}")
    expect(panel.get_by_role("button", name="Try again")).to_be_visible()
    expect(panel.get_by_text("No files shared in this thread yet")).to_be_hidden()


def test_the_panel_opens_and_closes_from_the_keyboard(open_app, wedding: Wedding):
    send_files(wedding, wedding.planner, [("plan.txt", b"tables 1-12\n", "text/plain")])
    page = open_thread(open_app, wedding, wedding.florist)
    button = files_button(page)
    for _ in range(40):
        page.keyboard.press("Tab")
        if button.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the Files button")

    page.keyboard.press("Enter")
    panel = page.get_by_role("dialog", name="Files")
    expect(panel).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(shared(panel)).to_have_count(1)
    expect(panel.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("Tab")
    expect(panel.get_by_role("button", name="Download plan.txt")).to_be_focused()
    with page.expect_download() as waiting:
        page.keyboard.press("Enter")
    assert Path(waiting.value.path()).read_bytes() == b"tables 1-12\n"

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
