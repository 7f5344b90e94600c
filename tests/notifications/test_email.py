"""The email channel against a real SMTP server (aiosmtpd, on its own asyncio loop in a thread):
what arrives, what the user's words can and cannot do to it, and how each failure is sorted."""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio
import trio.testing
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from hub.errors import ConfigError
from hub.notifications.email import (
    EmailContent,
    EmailSender,
    SmtpTarget,
    compose,
    parse_smtp_url,
)
from hub.notifications.failures import DeliveryFailed
from tests.notifications.certs import LocalCA, make_ca, unused_port

FROM = "Vendor Hub <notify@hub.example>"
TO = "marta@bloom.example"
LOGIN, PASSWORD = "hub-relay", "s3cret:p@ss/word"


def content(**changes) -> EmailContent:
    fields = {
        "headline": "Marta (Bloom Florals) mentioned you",
        "wedding": "Smith & Jones",
        "wedding_date": datetime.date(2027, 6, 12),
        "thread_title": "Rain plan",
        "sender_name": "Marta",
        "body": "Tent arrives at 3pm.\nCan you bring the heaters?",
        "link": "https://hub.example/#/threads/7d3c1e9a",
        "reason": "mention",
        "idempotency_key": "n-8f2c41.email",
    }
    return EmailContent(**(fields | changes))


def message(**changes) -> EmailMessage:
    subject = changes.pop("subject", "Marta (Bloom Florals) mentioned you")
    return compose(from_address=FROM, to_address=TO, subject=subject, content=content(**changes))


class Mailbox:
    """An aiosmtpd handler that keeps what it is given, or answers RCPT or DATA as told."""

    def __init__(self, *, rcpt_reply: str | None = None, data_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.received: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        LOGIN.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers 535 itself (its default, True, means "I replied").
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(handler: Mailbox, **options) -> Iterator[int]:
    """aiosmtpd on a free loopback port for the length of the block: the port."""
    port = unused_port()
    # A loop of its own, made directly: the suite imports trio_asyncio, whose event loop policy
    # refuses to make asyncio loops while Trio runs (this one runs in aiosmtpd's thread).
    loop = asyncio.SelectorEventLoop()
    controller = Controller(handler, hostname="127.0.0.1", port=port, loop=loop, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return make_ca(tmp_path / "tls", names=("localhost",), addresses=("127.0.0.1",))


def sender(url: str, **options) -> EmailSender:
    return EmailSender(parse_smtp_url(url), FROM, **options)


async def test_a_notification_arrives_with_both_parts_and_its_headers():
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        await sender(f"smtp://127.0.0.1:{port}").send(message())

    [(mail_from, recipients, received)] = mailbox.received
    assert (mail_from, recipients) == ("notify@hub.example", [TO])
    assert received.get_content_type() == "multipart/alternative"
    assert received["Subject"] == "Marta (Bloom Florals) mentioned you"
    assert received["Message-ID"] == "<n-8f2c41.email@hub.example>"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["From"] == FROM and received["To"] == TO
    plain = received.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = received.get_body(("html",)).get_content()
    for part in (plain, html):
        assert "Rain plan" in part and "12 June 2027" in part
        assert "you were mentioned in this thread" in part
        assert "https://hub.example/#/threads/7d3c1e9a" in part
    assert "Tent arrives at 3pm.\nCan you bring the heaters?" in plain
    assert "Smith &amp; Jones" in html and "Tent arrives at 3pm.<br>" in html


def test_a_retried_delivery_is_the_same_message_id():
    assert message()["Message-ID"] == message()["Message-ID"]
    assert message(idempotency_key="n-other")["Message-ID"] == "<n-other@hub.example>"


def test_user_content_is_only_ever_text_in_the_html_part():
    hostile = '"><img src=x onerror=alert(1)>'
    composed = message(
        headline="<script>alert('headline')</script>",
        wedding=hostile,
        thread_title="<b>bold</b>",
        sender_name=hostile,
        body="<script>alert(1)</script>\n" + hostile,
    )

    html = composed.get_body(("html",)).get_content()
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    plain = composed.get_body(("plain",)).get_content()
    assert "<script>alert(1)</script>" in plain  # plain text shows what was written


async def test_a_line_break_in_the_subject_cannot_add_a_header():
    mailbox = Mailbox()
    composed = message(subject="Rain plan\r\nBcc: everyone@rival.example\nX-Evil: 1")

    assert "\r" not in composed["Subject"] and "\n" not in composed["Subject"]
    with smtp_server(mailbox) as port:
        await sender(f"smtp://127.0.0.1:{port}").send(composed)

    [(_, recipients, received)] = mailbox.received
    assert recipients == [TO]
    assert received["Bcc"] is None and received["X-Evil"] is None
    assert received["Subject"] == "Rain plan Bcc: everyone@rival.example X-Evil: 1"


@pytest.mark.parametrize(
    "address", ["marta@bloom.example\r\nBcc: x@rival.example", "a@b.example, c@d.example", "x"]
)
def test_a_recipient_that_is_not_one_address_is_a_permanent_failure(address):
    with pytest.raises(DeliveryFailed) as failure:
        compose(from_address=FROM, to_address=address, subject="Hi", content=content())

    assert failure.value.permanent


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"link": "javascript:alert(1)"}, "http\\(s\\) URL"),
        ({"link": "ftp://hub.example/"}, "http\\(s\\) URL"),
        ({"reason": "spam"}, "reason"),
        ({"idempotency_key": "n-1>\r\nBcc: x"}, "idempotency_key"),
    ],
)
def test_content_the_dispatcher_got_wrong_is_refused(change, complaint):
    with pytest.raises(ValueError, match=complaint):
        content(**change)


async def test_a_451_reply_is_transient():
    with smtp_server(Mailbox(data_reply="451 4.3.0 Try again later")) as port:
        with pytest.raises(DeliveryFailed) as failure:
            await sender(f"smtp://127.0.0.1:{port}").send(message())

    assert not failure.value.permanent
    assert failure.value.reason == f"SMTP 451 from 127.0.0.1:{port}: 4.3.0 Try again later"


async def test_a_550_refused_mailbox_is_permanent():
    with smtp_server(Mailbox(rcpt_reply="550 5.1.1 Mailbox unavailable")) as port:
        with pytest.raises(DeliveryFailed) as failure:
            await sender(f"smtp://127.0.0.1:{port}").send(message())

    assert failure.value.permanent and "SMTP 550" in failure.value.reason


async def test_a_refused_connection_is_transient():
    with pytest.raises(DeliveryFailed) as failure:
        await sender(f"smtp://127.0.0.1:{unused_port()}").send(message())

    assert not failure.value.permanent and "ConnectionRefusedError" in failure.value.reason


async def test_a_server_that_never_answers_is_transient_after_the_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel does) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(DeliveryFailed) as failure:
            await sender(url, timeout_s=0.5).send(message())

    assert not failure.value.permanent


async def test_starttls_with_the_right_credentials_delivers(ca):
    mailbox = Mailbox()
    tls = {"tls_context": ca.server_context(), "require_starttls": True}
    with smtp_server(mailbox, **tls, authenticator=authenticator, auth_required=True) as port:
        url = f"smtp+starttls://{LOGIN}:s3cret%3Ap%40ss%2Fword@127.0.0.1:{port}?ca={ca.ca_file}"
        await sender(url).send(message())

    assert len(mailbox.received) == 1


async def test_wrong_credentials_are_permanent_and_never_shown(ca):
    tls = {"tls_context": ca.server_context(), "require_starttls": True}
    with smtp_server(Mailbox(), **tls, authenticator=authenticator, auth_required=True) as port:
        url = f"smtp+starttls://{LOGIN}:hunter2-wrong@127.0.0.1:{port}?ca={ca.ca_file}"
        with pytest.raises(DeliveryFailed) as failure:
            await sender(url).send(message())

    assert failure.value.permanent
    assert "refused the login of 'hub-relay' (535)" in failure.value.reason
    assert "hunter2" not in failure.value.reason and "hunter2" not in repr(failure.value)


async def test_auth_over_plain_smtp_is_refused_before_any_connection():
    with pytest.raises(ConfigError, match="credentials need TLS"):
        parse_smtp_url(f"smtp://{LOGIN}:pw@127.0.0.1:2525")


async def test_starttls_is_required_when_the_url_asks_for_it():
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:  # a server that does not offer STARTTLS
        with pytest.raises(DeliveryFailed, match="does not offer STARTTLS") as failure:
            await sender(f"smtp+starttls://127.0.0.1:{port}").send(message())

    assert not failure.value.permanent and mailbox.received == []


async def test_starttls_refuses_a_server_certificate_it_cannot_verify(ca):
    mailbox = Mailbox()
    with smtp_server(mailbox, tls_context=ca.server_context(), require_starttls=True) as port:
        with pytest.raises(DeliveryFailed, match="TLS certificate not trusted"):
            # Without ?ca= only the system's authorities are trusted.
            await sender(f"smtp+starttls://127.0.0.1:{port}").send(message())

    assert mailbox.received == []


async def test_implicit_tls_delivers(ca):
    mailbox = Mailbox()
    with smtp_server(mailbox, ssl_context=ca.server_context()) as port:
        await sender(f"smtps://127.0.0.1:{port}?ca={ca.ca_file}").send(message())

    assert len(mailbox.received) == 1


def test_the_url_gives_security_port_and_percent_decoded_credentials(ca):
    target = parse_smtp_url(f"SMTP+STARTTLS://relay%40hub:p%3Aw%40rd@Mail.Example?ca={ca.ca_file}")

    assert target == SmtpTarget(
        security="starttls",
        host="mail.example",
        port=587,
        username="relay@hub",
        password="p:w@rd",
        ca_file=ca.ca_file,
    )
    assert "p:w@rd" not in repr(target) and "relay@hub" in repr(target)


@pytest.mark.parametrize(
    ("url", "security", "port"),
    [
        ("smtp://mail.example", "plain", 25),
        ("smtp://mail.example:2525", "plain", 2525),
        ("smtp+starttls://mail.example", "starttls", 587),
        ("smtps://mail.example", "tls", 465),
        ("smtps://[2001:db8::5]:4650", "tls", 4650),
    ],
)
def test_each_scheme_has_its_default_port(url, security, port):
    target = parse_smtp_url(url)

    assert (target.security, target.port) == (security, port)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mail.example:587", "must look like smtp"),
        ("http://mail.example", "must look like smtp"),
        ("smtp://", "must look like smtp"),
        ("smtp://mail.example:0", "port must be 1 to 65535"),
        ("smtp://mail.example:99999", "port must be 1 to 65535"),
        ("smtp://mail.example/path", "no path"),
        ("smtps://user@mail.example", "user:password@"),
        ("smtps://:secret@mail.example", "user:password@"),
        ("smtps://mail.example?verify=no", "the only query parameter is ca="),
        ("smtps://mail.example?ca=/no/such/ca.pem", "no CA file at /no/such/ca.pem"),
        ("smtp://mail.example?ca=/etc/hostname", "ca= is for"),
    ],
)
def test_a_malformed_url_names_the_variable(url, complaint):
    with pytest.raises(ConfigError, match=complaint) as error:
        parse_smtp_url(url)

    assert "HUB_SMTP_URL" in str(error.value)


def test_a_malformed_url_never_shows_its_password():
    with pytest.raises(ConfigError) as error:
        parse_smtp_url("smtpx://relay:hunter2@mail.example")

    assert "hunter2" not in str(error.value)


async def test_a_cancelled_send_returns_at_once_while_its_worker_holds_a_slot(nursery):
    limiter = trio.CapacityLimiter(1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
        outgoing = sender(url, timeout_s=5.0, limiter=limiter)
        with trio.CancelScope() as scope:
            nursery.start_soon(wait_then_cancel, limiter, scope)
            await outgoing.send(message())

    assert scope.cancelled_caught


async def wait_then_cancel(limiter: trio.CapacityLimiter, scope: trio.CancelScope) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert limiter.borrowed_tokens == 1  # the worker talking to the silent server
    scope.cancel()
