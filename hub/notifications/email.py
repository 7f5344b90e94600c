"""The email channel: HUB_SMTP_URL read into a target, a notification composed as a message, and
the message handed to an SMTP server.

HUB_SMTP_URL is `smtp://host[:port]` (plain, port 25), `smtp+starttls://host[:port]` (587; the
server must offer STARTTLS, or nothing is sent), or `smtps://host[:port]` (465, TLS from the first
byte), with an optional `user:password@` (percent-encoded) for AUTH. A TLS server is verified
against the system's certificate authorities, or against those of one PEM file given as
`?ca=/path/to/ca.pem` (a private relay's CA; the tests' own): a query parameter rather than a
setting of its own, so everything about the server stays in one value, as HUB_BLOB_URL does.

smtplib is blocking, so each send runs in a worker thread, at most `limiter`'s count at once.
Whatever happens is told to the dispatcher as `DeliveryFailed`: transient when trying later may
work (no connection, a timeout, a 4xx reply, TLS trouble), permanent when the answer will be the
same (a 5xx reply, credentials refused).
"""

from __future__ import annotations

import datetime
import html
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import trio

from hub.config import parse_mail_address, redact_url
from hub.errors import ConfigError
from hub.notifications.failures import DeliveryFailed, printable

Security = Literal["plain", "starttls", "tls"]
_SECURITY: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}

DEFAULT_CONCURRENCY = 4
"""Sends in flight at once per sender: a relay throttles a client that opens many connections."""

SUBJECT_MAX = 200
SERVER_TEXT_MAX = 200

Reason = Literal["mention", "acknowledgement", "reminder", "escalation", "urgent"]
REASONS: dict[str, str] = {
    "mention": "you were mentioned in this thread",
    "acknowledgement": "a change in this thread needs your acknowledgement",
    "reminder": "a reminder you set on this thread is due",
    "escalation": "a message in this thread is waiting for an answer and was escalated to you",
    "urgent": "an urgent message was posted in this thread",
}
"""Why the recipient gets the email, said at its foot."""

# The left part of a Message-ID is a dot-atom (RFC 5322); keys are the dispatcher's own, so a
# stricter alphabet costs nothing and keeps the header safe to read anywhere.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+=-]*(?:\.[A-Za-z0-9_+=-]+)*")


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """The SMTP server HUB_SMTP_URL names, and how to talk to it."""

    security: Security
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    def __repr__(self) -> str:
        # Targets end up in logs and tracebacks; the password must not.
        login = f", username={self.username!r}, password='***'" if self.username else ""
        ca = f", ca_file={str(self.ca_file)!r}" if self.ca_file else ""
        return f"SmtpTarget({self.security}, {self.host}:{self.port}{login}{ca})"


def parse_smtp_url(url: str) -> SmtpTarget:
    """The target HUB_SMTP_URL names, or ConfigError saying what is wrong (never the password)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
    except ValueError:  # an unbalanced [ or ], which redact_url cannot show either
        raise ConfigError("HUB_SMTP_URL is not a URL (an unbalanced [ or ])") from None
    scheme = parts.scheme.lower()
    if scheme not in _SECURITY or not hostname:
        raise ConfigError(
            "HUB_SMTP_URL must look like smtp+starttls://user:password@mail.example:587 "
            f"(or smtp://, smtps://), got {redact_url(text)!r}"
        )
    security, default_port = _SECURITY[scheme]
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(f"HUB_SMTP_URL: the port must be 1 to 65535, got {redact_url(text)!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError("HUB_SMTP_URL: a server URL has no path or fragment")

    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None) or username == "":
        raise ConfigError("HUB_SMTP_URL: credentials are written user:password@ (both)")
    if username is not None and security == "plain":
        # AUTH over plain text would hand the password to anyone on the path.
        raise ConfigError(
            "HUB_SMTP_URL: credentials need TLS: use smtp+starttls:// or smtps:// with them"
        )

    ca_file = None
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        query = [("", "")]
    for key, value in query:
        if key != "ca" or ca_file is not None or not value:
            raise ConfigError("HUB_SMTP_URL: the only query parameter is ca=/path/to/ca.pem")
        if security == "plain":
            raise ConfigError("HUB_SMTP_URL: ca= is for smtp+starttls:// and smtps://")
        ca_file = Path(value)
        if not ca_file.is_file():
            raise ConfigError(f"HUB_SMTP_URL: no CA file at {ca_file}")

    return SmtpTarget(
        security=security,
        host=hostname,
        port=port or default_port,
        username=username,
        password=password,
        ca_file=ca_file,
    )


@dataclass(frozen=True, slots=True)
class EmailContent:
    """What a notification email says. Every string but `link` and `idempotency_key` may come
    from users, and is only ever shown as text."""

    headline: str
    wedding: str
    thread_title: str
    sender_name: str
    body: str
    link: str
    reason: Reason
    idempotency_key: str
    wedding_date: datetime.date | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}, got {self.reason!r}")
        link = urlsplit(self.link)
        # http too: a hub on a laptop or a LAN has no TLS, and the link is the operator's
        # HUB_PUBLIC_URL, never anything a user wrote.
        if link.scheme not in ("https", "http") or not link.netloc or not self.link.isprintable():
            raise ValueError("link must be an http(s) URL into the web client")
        if not _IDEMPOTENCY_KEY.fullmatch(self.idempotency_key) or len(self.idempotency_key) > 200:
            raise ValueError("idempotency_key must be letters, digits and . _ + = - (≤ 200)")


def compose(
    *, from_address: str, to_address: str, subject: str, content: EmailContent
) -> EmailMessage:
    """The notification as a multipart/alternative message, plain text and HTML.

    Its Message-ID is made from the idempotency key, so every attempt at one delivery is the same
    message to the recipient's server and mail client. A recipient that is not one plain address
    is a permanent DeliveryFailed: no retry would make it one.
    """
    sender = parse_mail_address(from_address)
    if sender is None:
        raise ValueError("from_address must be one email address")
    recipient = parse_mail_address(to_address)
    if recipient is None:
        raise DeliveryFailed("the recipient's email address is not valid", permanent=True)
    domain = sender[1].rpartition("@")[2].lower()

    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = formataddr(recipient)
    message["Subject"] = header_text(subject, SUBJECT_MAX)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{content.idempotency_key}@{domain}>"
    # RFC 3834: vacation responders and the like must not answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_plain_text(content))
    message.add_alternative(_html(content), subtype="html")
    return message


def header_text(text: str, limit: int) -> str:
    """`text` made safe for a header: line breaks and other control characters become spaces
    (a CR or LF in a subject would start a header of the user's choosing), cut to `limit`."""
    return printable(text, limit)


def _wedding(content: EmailContent) -> str:
    if content.wedding_date is None:
        return content.wedding
    day = content.wedding_date
    return f"{content.wedding} ({day.day} {day:%B %Y})"


def _plain_text(content: EmailContent) -> str:
    return (
        f"{content.headline}\n\n"
        f"Wedding: {_wedding(content)}\n"
        f"Thread: {content.thread_title}\n"
        f"From: {content.sender_name}\n\n"
        f"{content.body}\n\n"
        f"Open the thread: {content.link}\n\n"
        f"--\nYou get this email because {REASONS[content.reason]}.\n"
        "Vendor Connections Hub\n"
    )


def _html(content: EmailContent) -> str:
    def text(value: str) -> str:
        return html.escape(value, quote=True)

    body = "<br>\n".join(text(line) for line in content.body.splitlines())
    return (
        "<!DOCTYPE html>\n"
        '<html><body style="font-family: sans-serif; line-height: 1.4; color: #222;">\n'
        f'<p style="font-size: 1.1em;"><strong>{text(content.headline)}</strong></p>\n'
        f"<p>Wedding: {text(_wedding(content))}<br>\n"
        f"Thread: {text(content.thread_title)}<br>\n"
        f"From: {text(content.sender_name)}</p>\n"
        '<blockquote style="margin: 0 0 1em; padding-left: 0.8em; border-left: 3px solid #ccc;">'
        f"{body}</blockquote>\n"
        f'<p><a href="{text(content.link)}">Open the thread</a></p>\n'
        f'<p style="color: #666; font-size: 0.9em;">You get this email because '
        f"{text(REASONS[content.reason])}.<br>\nVendor Connections Hub</p>\n"
        "</body></html>\n"
    )


class EmailSender:
    """Hands composed messages to one SMTP server, a connection per message.

    `timeout_s` bounds each wait on the server (the connection, every reply) and the attempt as
    a whole; `sender` is the envelope sender (MAIL FROM), and its domain the name the hub gives
    in EHLO (the host's own name would need a reverse lookup, which can block for seconds).
    """

    def __init__(
        self,
        target: SmtpTarget,
        sender: str,
        *,
        timeout_s: float = 30.0,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        parsed = parse_mail_address(sender)
        if parsed is None:
            raise ValueError("sender must be one email address")
        self._target = target
        self._sender = parsed[1]
        self._ehlo_name = self._sender.rpartition("@")[2]
        self._timeout_s = timeout_s
        self._limiter = limiter or trio.CapacityLimiter(DEFAULT_CONCURRENCY)
        self._tls = (
            ssl.create_default_context(cafile=target.ca_file)
            if target.security != "plain"
            else None
        )

    async def send(self, message: EmailMessage) -> None:
        """Deliver `message` to its To and Cc addresses, or raise DeliveryFailed."""
        # smtplib blocks in socket calls Trio cannot interrupt, so a cancelled or timed-out send
        # abandons its worker instead of waiting for it: the thread ends by itself within its
        # socket timeout, talking only to its own connection, and keeps its limiter token until
        # then, so abandoned workers still count against the limit.
        with trio.move_on_after(self._timeout_s):
            await trio.to_thread.run_sync(
                self._send_blocking, message, abandon_on_cancel=True, limiter=self._limiter
            )
            return
        raise DeliveryFailed(
            f"SMTP server {self._where} did not finish within {self._timeout_s:g} s"
        )

    @property
    def _where(self) -> str:
        return f"{self._target.host}:{self._target.port}"

    def _send_blocking(self, message: EmailMessage) -> None:
        target = self._target
        try:
            if target.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.host,
                    target.port,
                    local_hostname=self._ehlo_name,
                    timeout=self._timeout_s,
                    context=self._tls,
                )
            else:
                client = smtplib.SMTP(
                    target.host,
                    target.port,
                    local_hostname=self._ehlo_name,
                    timeout=self._timeout_s,
                )
            with client:
                client.ehlo()
                if target.security == "starttls":
                    if not client.has_extn("starttls"):
                        # Sending anyway would put the message, and the password, in the clear
                        # (an attacker on the path strips the offer to make us do just that).
                        raise DeliveryFailed(
                            f"SMTP server {self._where} does not offer STARTTLS; nothing sent"
                        )
                    client.starttls(context=self._tls)
                    client.ehlo()
                if target.username is not None:
                    client.login(target.username, target.password or "")
                refused = client.send_message(message, from_addr=self._sender)
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryFailed(
                f"SMTP server {self._where} refused the login of {target.username!r} "
                f"({error.smtp_code})",
                permanent=not _is_temporary(error.smtp_code),
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryFailed(
                f"SMTP server {self._where} offers no AUTH, and HUB_SMTP_URL has credentials",
                permanent=True,
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            raise self._refused(error.recipients) from None
        except smtplib.SMTPResponseException as error:
            raise self._reply(error.smtp_code, error.smtp_error) from None
        except smtplib.SMTPServerDisconnected as error:
            raise DeliveryFailed(
                f"SMTP server {self._where} closed the connection ({self._scrub(str(error))})"
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise DeliveryFailed(
                f"SMTP server {self._where}: TLS certificate not trusted ({error.verify_message})"
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            # Refused or reset connections, timeouts, TLS failures: the server or the path may
            # be back later.
            raise DeliveryFailed(
                f"SMTP server {self._where}: {type(error).__name__} {self._scrub(str(error))}"
            ) from None
        if refused:
            raise self._refused(refused)

    def _refused(self, recipients: dict[str, tuple[int, bytes]]) -> DeliveryFailed:
        code, text = min(recipients.values(), key=lambda reply: reply[0])
        return self._reply(code, text)

    def _reply(self, code: int, text: bytes | str) -> DeliveryFailed:
        said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return DeliveryFailed(
            f"SMTP {code} from {self._where}: {printable(self._scrub(said), SERVER_TEXT_MAX)}",
            permanent=not _is_temporary(code),
        )

    def _scrub(self, text: str) -> str:
        """What the server said, without the password should it echo it back."""
        password = self._target.password
        return text.replace(password, "***") if password else text


def _is_temporary(code: int) -> bool:
    """A reply the server means as "not now" (4xx), or no reply code at all."""
    return not 500 <= code < 600
