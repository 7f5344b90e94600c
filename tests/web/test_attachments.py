"""Files in the web client: a photo chosen in one browser is uploaded, sent with a caption and
shown as a preview in the other; a file the hub refuses says why and sends nothing; downloads
are the bytes that were uploaded."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, PHONE, Wedding, make_wedding
from tests.web.hubproc import RestError, WebHub
from tests.web.test_live import acknowledged, messages, open_thread, send

HTML_AS_JPEG = b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>\n"


def png(folder: Path, name: str = "arch.png", size: tuple[int, int] = (400, 300)) -> Path:
    """A picture with something in it (a gradient), so its thumbnail is a real image."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)]
    )
    path = folder / name
    image.save(path, "PNG")
    return path


def composer_files(page):
    return page.get_by_role("list", name="Files to send").get_by_role("listitem")


def download_button(message, filename: str):
    return message.get_by_role("button", name=re.compile(f"^Download {re.escape(filename)}"))


def attach(page, *paths: Path) -> None:
    page.locator(".composer input[type=file]").set_input_files(list(paths))


def test_a_photo_sent_with_a_caption_shows_as_a_preview_for_the_other_vendor(
    open_app, wedding: Wedding, tmp_path: Path
):
    photo = png(tmp_path)
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist, viewport=DESKTOP)
    expect(planner.get_by_role("button", name="Attach file")).to_be_enabled()

    attach(planner, photo)
    chip = composer_files(planner)
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text("arch.png")
    expect(planner.locator(".chip.done")).to_have_count(1)  # uploaded
    send(planner, "The arch, from the front")
    expect(acknowledged(planner, "The arch, from the front")).to_have_count(1)
    expect(composer_files(planner)).to_have_count(0)

    shown = messages(florist).filter(has_text="The arch, from the front")
    expect(shown).to_have_count(1)
    expect(shown).to_contain_text("Pat Planner")
    preview = shown.get_by_role("img", name="arch.png")
    expect(preview).to_have_attribute("src", re.compile(r"^blob:"))
    expect(preview).to_have_attribute("width", "400")
    expect(preview).to_have_attribute("height", "300")
    assert preview.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    expect(download_button(shown, "arch.png")).to_be_visible()

    stored = wedding.history(wedding.florist)
    assert [(m["kind"], m["body"]) for m in stored] == [("attachment", "The arch, from the front")]
    [file] = stored[0]["metadata"]["attachments"]
    assert (file["filename"], file["content_type"], file["size"], file["thumbnail"]) == (
        "arch.png",
        "image/png",
        photo.stat().st_size,
        True,
    )
    info = wedding.hub.call(wedding.planner, "GET", f"/attachments/{file['id']}/info")
    assert info["message_id"] == stored[0]["id"]
    assert planner.errors == [] and florist.errors == []


def test_a_file_the_hub_refuses_shows_its_reason_and_nothing_is_sent(
    open_app, wedding: Wedding, tmp_path: Path
):
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(HTML_AS_JPEG)
    with pytest.raises(RestError) as refused:
        wedding.hub.upload(
            wedding.planner, wedding.thread_id, "photo.jpg", HTML_AS_JPEG, "image/jpeg"
        )
    assert refused.value.status == 415
    reason = json.loads(refused.value.body)["error"]["message"]
    page = open_thread(open_app, wedding, wedding.florist)

    attach(page, fake)
    chip = composer_files(page)
    expect(chip).to_contain_text("photo.jpg")
    expect(chip.get_by_role("alert")).to_have_text(f"Not uploaded: {reason}")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Write a message first.")).to_be_visible()

    expect(messages(page)).to_have_count(0)
    assert wedding.history(wedding.planner) == []
    assert page.evaluate("sessionStorage.getItem('hub.outbox')") in (None, "[]")


def test_a_download_is_the_file_that_was_uploaded(open_app, wedding: Wedding, tmp_path: Path):
    photo = png(tmp_path, "marquee.png", (640, 480))
    order = tmp_path / "order.csv"
    order.write_bytes(b"stem,count\npeony,120\nranunculus,80\n")
    planner = open_thread(open_app, wedding, wedding.planner)
    florist = open_thread(open_app, wedding, wedding.florist)

    attach(planner, photo, order)
    expect(composer_files(planner)).to_have_count(2)
    expect(composer_files(planner).filter(has_text="order.csv")).to_contain_text("35 B")
    expect(composer_files(planner).filter(has_text="marquee.png")).to_contain_text("kB")
    planner.get_by_role("button", name="Send").click()  # no caption: the files alone

    shown = messages(florist).filter(has_text="order.csv")
    expect(shown).to_have_count(1)
    # A spreadsheet has no preview; the photo has one.
    expect(shown.get_by_role("img")).to_have_count(1)
    for path in (photo, order):
        with florist.expect_download() as waiting:
            download_button(shown, path.name).click()
        download = waiting.value
        assert download.suggested_filename == path.name
        assert Path(download.path()).read_bytes() == path.read_bytes()
    [message] = wedding.history(wedding.planner)
    assert (message["kind"], message["body"]) == ("attachment", "")
    files = message["metadata"]["attachments"]
    assert [a["filename"] for a in files] == ["marquee.png", "order.csv"]
    assert florist.errors == []


def test_a_file_removed_from_the_composer_is_not_sent_and_leaves_the_hub(
    open_app, wedding: Wedding, tmp_path: Path
):
    page = open_thread(open_app, wedding, wedding.florist)
    attach(page, png(tmp_path))
    chip = composer_files(page)
    expect(page.locator(".chip.done")).to_have_count(1)
    with page.expect_response(re.compile(r"/attachments/[0-9a-f-]{36}$")) as removing:
        page.get_by_role("button", name="Remove arch.png").click()
    assert (removing.value.request.method, removing.value.status) == ("DELETE", 204)
    upload_id = removing.value.url.rsplit("/", 1)[1]
    expect(chip).to_have_count(0)
    send(page, "Just words after all")

    expect(acknowledged(page, "Just words after all")).to_have_count(1)
    [message] = wedding.history(wedding.planner)
    assert (message["kind"], message["metadata"]) == ("text", {})
    with pytest.raises(RestError) as gone:
        wedding.hub.call(wedding.florist, "GET", f"/attachments/{upload_id}/info")
    assert gone.value.status == 404


def test_more_than_ten_files_are_not_added(open_app, wedding: Wedding, tmp_path: Path):
    notes = []
    for n in range(11):
        note = tmp_path / f"note-{n:02d}.txt"
        note.write_text(f"note {n}\n")
        notes.append(note)
    page = open_thread(open_app, wedding, wedding.florist)
    attach(page, *notes)
    expect(page.get_by_text("At most 10 files go with one message: 1 not added.")).to_be_visible()
    expect(composer_files(page)).to_have_count(10)
    expect(composer_files(page).filter(has_text="note-10.txt")).to_have_count(0)
    expect(page.locator(".chip.done")).to_have_count(10)
    send(page, "Ten notes")

    shown = acknowledged(page, "Ten notes")
    expect(download_button(shown, "note-")).to_have_count(10)
    [message] = wedding.history(wedding.planner)
    assert len(message["metadata"]["attachments"]) == 10


def test_previews_are_let_go_when_the_thread_closes(open_app, wedding: Wedding, tmp_path: Path):
    page = open_thread(open_app, wedding, wedding.florist)
    attach(page, png(tmp_path))
    expect(page.locator(".chip.done")).to_have_count(1)
    send(page, "look")
    preview = acknowledged(page, "look").get_by_role("img", name="arch.png")
    expect(preview).to_have_attribute("src", re.compile(r"^blob:"))
    url = preview.get_attribute("src")
    # Loaded again as an image (the policy allows blob: for images alone, not for fetch).
    still = """url => new Promise(done => {
        const img = new Image();
        img.onload = () => done('kept');
        img.onerror = () => done('revoked');
        img.src = url;
    })"""
    assert page.evaluate(still, url) == "kept"

    page.get_by_role("link", name="← Threads").click()
    expect(page.get_by_role("list", name="Threads")).to_be_visible()
    assert page.evaluate(still, url) == "revoked"


def test_files_fit_a_phone(open_app, wedding: Wedding, tmp_path: Path):
    long_name = "Seating-plan-" + "table" * 30 + ".png"
    page = open_thread(open_app, wedding, wedding.florist, viewport=PHONE)
    attach(page, png(tmp_path, long_name, (1200, 800)))
    expect(page.locator(".chip.done")).to_have_count(1)
    page_width = "document.documentElement.scrollWidth"
    assert page.evaluate(page_width) <= PHONE["width"]
    send(page, "The plan")

    preview = acknowledged(page, "The plan").get_by_role("img", name=long_name)
    expect(preview).to_have_attribute("src", re.compile(r"^blob:"))
    assert page.evaluate(page_width) <= PHONE["width"]
    box = preview.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    send_button = page.get_by_role("button", name="Send").bounding_box()
    assert send_button["y"] + send_button["height"] <= PHONE["height"]


def test_an_upload_shows_its_progress_and_holds_the_message_until_done(
    open_app, wedding: Wedding, tmp_path: Path
):
    photo = tmp_path / "big.png"
    Image.frombytes("RGB", (512, 512), random.randbytes(512 * 512 * 3)).save(photo)  # ~800 kB
    page = open_thread(open_app, wedding, wedding.florist)
    # A slow link (Chromium's own throttling), so the upload is seen under way.
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 200_000},
    )
    attach(page, photo)
    expect(page.get_by_role("progressbar", name="Uploading big.png")).to_be_visible()
    expect(composer_files(page)).to_contain_text("uploading…")
    send(page, "Too soon")
    expect(page.get_by_text("Wait until the files have uploaded, or remove them.")).to_be_visible()

    expect(page.locator(".chip.done")).to_have_count(1)
    expect(page.get_by_role("progressbar")).to_have_count(0)
    page.get_by_role("button", name="Send").click()  # the caption is still in the box
    expect(acknowledged(page, "Too soon").get_by_role("img", name="big.png")).to_be_visible()
    assert [m["kind"] for m in wedding.history(wedding.planner)] == ["attachment"]


@pytest.fixture
def small_wedding(tmp_path: Path):
    """A hub that takes files of 1 MiB at most."""
    var_dir = tmp_path / "small-hub"
    var_dir.mkdir()
    hub = WebHub(f"sqlite:///{tmp_path}/small.db", var_dir)
    hub.extra_env = {"HUB_MAX_FILE_SIZE": str(1024 * 1024)}
    hub.start()
    try:
        yield make_wedding(hub)
    finally:
        hub.stop()


def test_a_file_over_the_hubs_size_limit_says_so(open_app, small_wedding: Wedding, tmp_path):
    big = tmp_path / "scan.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024))
    page = open_thread(open_app, small_wedding, small_wedding.florist)
    attach(page, big)
    # The 413's message, or, when the hub closed the connection before the browser read it,
    # the page's own word for a broken upload: both say why.
    expect(composer_files(page).get_by_role("alert")).to_contain_text("larger than")
    assert small_wedding.history(small_wedding.planner) == []
