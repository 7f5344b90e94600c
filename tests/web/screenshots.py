"""The README's screenshots of the web client, at 360 px (a phone) and 1280 px (a desktop):
`.venv/bin/python -m tests.web.screenshots` writes docs/web-client-*.png from a hub of its own
with a wedding seeded through the REST API."""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import uuid
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import expect, sync_playwright

from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE
from tests.web.hubproc import Vendor, WebHub

DOCS = Path(__file__).resolve().parents[2] / "docs"


def seed(hub: WebHub) -> tuple[Vendor, Vendor, str, str]:
    planner = Vendor("Pat Planner", uuid.uuid4())
    florist = Vendor("Fran Florist", uuid.uuid4())
    caterer = Vendor("Cal Caterer", uuid.uuid4())
    for other in (florist, caterer):
        hub.call(other, "GET", "/me")
    group = hub.call(
        planner, "POST", "/groups", {"name": "Smith & Jones", "wedding_date": "2027-06-12"}
    )
    hub.call(planner, "POST", "/groups", {"name": "Okafor & Reyes", "wedding_date": "2027-08-21"})
    for other, kind in ((florist, "florist"), (caterer, "caterer")):
        hub.call(
            planner,
            "POST",
            f"/groups/{group['id']}",
            {"organization_id": str(other.org_id), "vendor_type": kind},
        )
        hub.call(other, "POST", f"/groups/{group['id']}/accept")
    threads = {}
    for title, priority in (
        ("Table plan", "normal"),
        ("Rain plan for the ceremony", "urgent"),
        ("Canapés timing", "high"),
    ):
        threads[title] = hub.call(
            planner,
            "POST",
            "/threads",
            {"group_id": group["id"], "title": title, "priority": priority},
        )["id"]
    rain = threads["Rain plan for the ceremony"]
    for who, body in (
        (planner, "Forecast says 70% rain at 3pm. Ceremony moves under the oak marquee."),
        (caterer, "Noted: we'll set the drinks table inside the marquee too."),
    ):
        hub.call(who, "POST", f"/threads/{rain}", {"body": body})
    photo = hub.upload(planner, rain, "marquee.png", marquee(), "image/png")
    hub.call(
        planner,
        "POST",
        f"/threads/{rain}",
        {
            "kind": "attachment",
            "attachment_ids": [photo["id"]],
            "body": "Fran, can the arch fit under the marquee? It's 4.5 m high.",
        },
    )
    hub.call(
        caterer,
        "POST",
        f"/threads/{rain}",
        {"kind": "location", "latitude": 51.5014, "longitude": -0.1419, "body": "Van unloading"},
    )
    hub.call(caterer, "POST", f"/threads/{threads['Canapés timing']}", {"body": "Canapés at 5pm?"})
    return planner, florist, group["id"], rain


def marquee() -> bytes:
    """A picture of a marquee on a lawn under a grey sky, drawn here (no photo is shipped)."""
    width, height = 640, 400
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):  # sky, then lawn
        shade = 150 + y * 60 // height
        draw.line([(0, y), (width, y)], fill=(shade, shade + 8, shade + 20))
    draw.rectangle([0, 280, width, height], fill=(84, 140, 72))
    draw.polygon([(120, 290), (520, 290), (480, 170), (160, 170)], fill=(246, 244, 238))
    draw.polygon([(160, 170), (320, 90), (480, 170)], fill=(232, 229, 220))
    for x in range(180, 480, 60):
        draw.line([(x, 175), (x - 10, 290)], fill=(210, 206, 196), width=3)
    draw.rectangle([290, 220, 350, 290], fill=(120, 96, 72))
    data = io.BytesIO()
    image.save(data, "PNG")
    return data.getvalue()


def main() -> int:
    if not Path(CHROMIUM).exists():
        print(f"no chromium at {CHROMIUM}: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        hub = WebHub(f"sqlite:///{work}/hub.db", Path(work))
        hub.start()
        try:
            planner, florist, group_id, rain = seed(hub)
            asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                desktop = browser.new_context(viewport=DESKTOP).new_page()
                desktop.goto(f"{hub.url}/#/t/{rain}&token={planner.token}")
                phone = browser.new_context(viewport=PHONE, device_scale_factor=2).new_page()
                phone.goto(f"{hub.url}/#/t/{rain}&token={florist.token}")
                for page in (desktop, phone):
                    expect(page.get_by_role("status")).to_have_text("Live")
                expect(desktop.get_by_label("Who is here")).to_contain_text("Fran Florist")
                box = phone.get_by_role("textbox", name="Message")
                box.press_sequentially("Yes, with 20 cm to spare")
                expect(desktop.get_by_text("Fran Florist is typing…")).to_be_visible()
                phone.screenshot(path=DOCS / "web-client-phone-thread.png")
                desktop.screenshot(path=DOCS / "web-client-desktop-thread.png")
                phone.goto(f"{hub.url}/#/g/{group_id}")
                expect(phone.get_by_role("list", name="Threads").get_by_role("link")).to_have_count(
                    3
                )
                phone.screenshot(path=DOCS / "web-client-phone-threads.png")
                desktop.goto(f"{hub.url}/#/")
                expect(
                    desktop.get_by_role("list", name="Weddings").get_by_role("link")
                ).to_have_count(2)
                desktop.screenshot(path=DOCS / "web-client-desktop-weddings.png")
                browser.close()
        finally:
            hub.stop()
    print(f"wrote {', '.join(p.name for p in sorted(DOCS.glob('web-client-*.png')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
