"""What the web client must never do: run a message as HTML, put the token in a URL or in the
page, or load anything from elsewhere; and what it does when its token expires."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import jwt
from playwright.sync_api import expect

from tests.web.conftest import Wedding
from tests.web.hubproc import Vendor
from tests.web.test_live import acknowledged, messages, open_thread, send

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def test_hostile_bodies_names_and_titles_render_as_text(open_app, wedding: Wedding):
    wedding.post(wedding.planner, HOSTILE)
    mallory = Vendor('<b onmouseover="window.pwned=3">Mal</b>', wedding.florist.org_id)
    wedding.thread('<img src=x onerror="window.pwned=4">')
    page = open_thread(open_app, wedding, mallory)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    send(page, HOSTILE + " live")

    shown = messages(page).filter(has_text=HOSTILE)
    expect(shown).to_have_count(2)
    expect(messages(page).filter(has_text=HOSTILE + " live")).to_have_count(1)
    log = page.get_by_role("log", name="Messages")
    assert log.locator("img, script, b").count() == 0
    planner = open_thread(open_app, wedding, wedding.planner)
    expect(messages(planner).filter(has_text=HOSTILE + " live")).to_contain_text(
        '<b onmouseover="window.pwned=3">Mal</b>'
    )
    planner.get_by_role("link", name="← Threads").click()
    expect(planner.get_by_role("list", name="Threads")).to_contain_text(
        '<img src=x onerror="window.pwned=4">'
    )
    for p in (page, planner):
        assert p.evaluate("window.pwned") is None
        assert p.locator("main img, main script, main b").count() == 0
    assert dialogs == []


def test_the_token_stays_out_of_urls_and_the_page(open_app, wedding: Wedding):
    urls = []
    page = open_app(wedding.hub, wedding.florist, path=f"#/t/{wedding.thread_id}")
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda socket: urls.append(socket.url))
    expect(page.get_by_role("status")).to_have_text("Live")
    # The address bar kept the screen and lost the token; the tab keeps it for reloads.
    assert page.url == f"{wedding.hub.url}/#/t/{wedding.thread_id}"
    stored = page.evaluate("sessionStorage.getItem('hub.token')")
    claims = jwt.decode(stored, options={"verify_signature": False})
    assert claims["sub"] == str(wedding.florist.user_id)
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_role("heading", name="Ceremony flowers")).to_be_visible()
    send(page, "still signed in after a reload")
    expect(messages(page).filter(has_text="still signed in")).to_have_count(1)
    assert urls, "the page made no requests"
    for url in urls:
        assert stored not in url and "token=" not in url
    assert stored not in page.content()


def test_security_headers_and_only_the_packages_files(web_hub):
    with urllib.request.urlopen(f"{web_hub.url}/") as answer:
        headers = answer.headers
        html = answer.read().decode()
    policy = headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["connect-src"] == f"'self' ws://127.0.0.1:{web_hub.ws_port}"
    # Previews of attachments are blob: URLs of what the page fetched with its token.
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["frame-ancestors"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in html and "eyJ" not in html  # no inline script, no token
    assert '<script type="module" src="/app/js/app.js"></script>' in html

    with urllib.request.urlopen(f"{web_hub.url}/app/js/app.js") as answer:
        assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
        etag = answer.headers["ETag"]
    request = urllib.request.Request(
        f"{web_hub.url}/app/js/app.js", headers={"If-None-Match": etag}
    )
    try:
        urllib.request.urlopen(request)
        raise AssertionError("expected 304")
    except urllib.error.HTTPError as error:
        assert error.code == 304
    for path in ("/app/__init__.py", "/app/../cli.py", "/app/%2e%2e/cli.py", "/app/nope.js"):
        try:
            urllib.request.urlopen(f"{web_hub.url}{path}")
            raise AssertionError(f"{path} was served")
        except urllib.error.HTTPError as error:
            assert error.code == 404, path


def test_a_hostile_host_header_is_not_echoed_into_the_policy(web_hub):
    request = urllib.request.Request(
        f"{web_hub.url}/app/config.json", headers={"Host": "evil.example; script-src *"}
    )
    with urllib.request.urlopen(request) as answer:
        policy = answer.headers["Content-Security-Policy"]
        body = answer.read().decode()
    assert "evil" not in policy and "evil" not in body
    assert f"ws://127.0.0.1:{web_hub.ws_port}/api/vendor-connections/websocket" in body


def test_a_public_websocket_url_is_what_the_page_is_told_and_allowed(tmp_path):
    from tests.web.hubproc import WebHub

    hub = WebHub(f"sqlite:///{tmp_path}/hub.db", tmp_path)
    hub.extra_env = {"HUB_WS_PUBLIC_URL": "wss://hub.example/api/vendor-connections/websocket"}
    hub.start()
    try:
        with urllib.request.urlopen(f"{hub.url}/app/config.json") as answer:
            policy = answer.headers["Content-Security-Policy"]
            config = json.loads(answer.read())
    finally:
        hub.stop()
    assert config["ws_url"] == "wss://hub.example/api/vendor-connections/websocket"
    assert "connect-src 'self' wss://hub.example;" in policy


def test_an_expired_token_asks_for_a_new_one_and_keeps_unsent_messages(open_app, wedding: Wedding):
    short = Vendor(
        wedding.florist.name, wedding.florist.org_id, user_id=wedding.florist.user_id, ttl_s=12
    )
    page = open_thread(open_app, wedding, short)
    # The hub closes the socket at the token's expiry (4001); the page asks for a new token.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30000)
    expect(page.get_by_text("Your session has expired")).to_be_visible()
    page.get_by_label("Access token").fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That is not a token")

    page.get_by_label("Access token").fill(wedding.florist.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_role("heading", name="Ceremony flowers")).to_be_visible()
    send(page, "back after signing in again")
    expect(acknowledged(page, "back after signing in again")).to_have_count(1)
    assert [m["body"] for m in wedding.history(wedding.planner)] == ["back after signing in again"]


def test_a_refused_token_opens_the_sign_in_form(open_app, web_hub):
    stranger = Vendor("Forger", uuid.uuid4())
    page = open_app(web_hub, stranger, path="")
    # A token signed with another key: the hub refuses it (401), the page asks for another.
    forged = "sessionStorage.getItem('hub.token').slice(0, -4) + 'AAAA'"
    page.evaluate(f"sessionStorage.setItem('hub.token', {forged})")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("The hub refused this token")).to_be_visible()


def test_what_one_person_left_unsent_is_never_sent_as_the_next_one(open_app, wedding: Wedding):
    florist = open_thread(open_app, wedding, wedding.florist)
    florist.context.set_offline(True)
    expect(florist.get_by_role("status")).to_contain_text("Offline")
    send(florist, "draft of the florist")
    expect(messages(florist).filter(has_text="draft of the florist")).to_contain_text("Pending")
    florist.get_by_role("button", name="Sign out").click()
    expect(florist.get_by_role("heading", name="Sign in")).to_be_visible()

    florist.context.set_offline(False)
    helper = Vendor("Hal Helper", wedding.florist.org_id, role="vendor")
    florist.get_by_label("Access token").fill(helper.token)
    florist.get_by_role("button", name="Sign in").click()
    expect(florist.get_by_role("status")).to_have_text("Live")
    florist.evaluate(f"location.hash = '#/t/{wedding.thread_id}'")
    expect(messages(florist)).to_have_count(0)
    send(florist, "first words of the helper")
    expect(acknowledged(florist, "first words of the helper")).to_have_count(1)
    stored = wedding.history(wedding.planner)
    assert [(m["body"], m["sender_name"]) for m in stored] == [
        ("first words of the helper", "Hal Helper")
    ]
