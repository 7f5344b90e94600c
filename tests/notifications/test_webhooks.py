"""The webhook channel against a real HTTP receiver on loopback: signed requests, what each answer
means to the dispatcher, and the SSRF guard both when a URL is registered and when it is used."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import trio

from hub.config import canonical_host
from hub.errors import Invalid
from hub.notifications.addresses import WebhookTarget, check_webhook_url, resolve_public
from hub.notifications.failures import DeliveryFailed
from hub.notifications.webhooks import deliver, new_secret, sign, verify_signature
from tests.notifications.certs import make_ca, unused_port
from tests.notifications.receiver import Receiver

SECRET = b"whsec_test-secret"
BODY = json.dumps({"event": "mention", "thread": "Rain plan", "text": "Tent at 3pm ü"}).encode()
NO_ORIGINS: frozenset[str] = frozenset()


def local(receiver: Receiver, path: str = "/hooks/hub") -> tuple[WebhookTarget, frozenset[str]]:
    """The receiver as a registered webhook, with the allow-list entry that lets it through."""
    allow = frozenset({f"127.0.0.1:{receiver.port}"})
    url = f"http://127.0.0.1:{receiver.port}{path}"
    return check_webhook_url(url, allow_hosts=allow, hub_origins=NO_ORIGINS), allow


async def send(target: WebhookTarget, allow: frozenset[str], **options) -> int:
    options = {"event": "mention", "delivery_id": "dlv-1", "timeout_s": 10.0, **options}
    return await deliver(target, secret=SECRET, body=BODY, allow_hosts=allow, **options)


async def test_a_delivery_is_signed_over_its_exact_bytes(nursery):
    receiver = await Receiver().start(nursery)
    target, allow = local(receiver)

    assert await send(target, allow) == 200

    [request] = receiver.requests
    assert request.body == BODY
    timestamp, signature = (
        request.headers["x-hub-timestamp"],
        request.headers["x-hub-signature-256"],
    )
    assert verify_signature(SECRET, timestamp, signature, request.body, now=time.time())
    assert not verify_signature(b"another secret", timestamp, signature, BODY, now=time.time())
    assert not verify_signature(SECRET, timestamp, signature, BODY + b" ", now=time.time())


async def test_a_delivery_carries_its_event_id_and_agent(nursery):
    receiver = await Receiver().start(nursery)
    target, allow = local(receiver, "/hooks/hub?team=bloom")

    await send(target, allow, event="thread.urgent", delivery_id="n-42:webhook")

    [request] = receiver.requests
    assert (request.method, request.target) == ("POST", "/hooks/hub?team=bloom")
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "vendor-connections-hub"
    assert request.headers["x-hub-event"] == "thread.urgent"
    assert request.headers["x-hub-delivery"] == request.headers["idempotency-key"] == "n-42:webhook"
    assert request.headers["x-hub-timestamp"].isdigit()


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body():
    expected = hmac.new(SECRET, b"1767225600." + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, 1767225600, BODY) == "sha256=" + expected


@pytest.mark.parametrize(
    ("timestamp", "now", "valid"),
    [
        ("1000", 1000 + 300, True),
        ("1000", 1000 - 300, True),
        ("1000", 1301, False),
        ("1000", 699, False),
        ("-1000", 1000, False),
        ("1e3", 1000, False),
        ("", 1000, False),
    ],
)
def test_a_signature_is_only_accepted_within_the_tolerance(timestamp, now, valid):
    signature = sign(SECRET, 1000, BODY)

    assert verify_signature(SECRET, timestamp, signature, BODY, now=now) is valid


def test_a_malformed_signature_header_is_refused_not_raised():
    assert not verify_signature(SECRET, "1000", "sha256=ü", BODY, now=1000)
    assert not verify_signature(SECRET, "1000", "", BODY, now=1000)


def test_new_secrets_are_random_and_marked():
    first, second = new_secret(), new_secret()

    assert first != second
    assert first.startswith("whsec_") and len(first) == len("whsec_") + 43


async def test_server_errors_are_transient_and_a_retry_is_the_same_delivery(nursery):
    receiver = await Receiver(statuses=(500, 503, 200)).start(nursery)
    target, allow = local(receiver)

    for _ in range(2):
        with pytest.raises(DeliveryFailed) as failure:
            await send(target, allow)
        assert not failure.value.permanent
    assert await send(target, allow) == 200

    assert len(receiver.requests) == 3
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {"dlv-1"}


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (404, True),
        (410, True),
        (408, False),
        (429, False),
        (500, False),
        (502, False),
    ],
)
async def test_each_answer_is_transient_or_permanent(nursery, status, permanent):
    receiver = await Receiver(statuses=(status,)).start(nursery)
    target, allow = local(receiver)

    with pytest.raises(DeliveryFailed) as failure:
        await send(target, allow)

    assert failure.value.permanent is permanent
    assert f"HTTP {status}" in failure.value.reason


async def test_a_redirect_is_not_followed(nursery):
    receiver = await Receiver(
        statuses=(302,), answer_headers=[("Location", "http://127.0.0.1:1/elsewhere")]
    ).start(nursery)
    target, allow = local(receiver)

    with pytest.raises(DeliveryFailed) as failure:
        await send(target, allow)

    assert failure.value.permanent and "redirects are not followed" in failure.value.reason
    assert [r.target for r in receiver.requests] == ["/hooks/hub"]


async def test_a_long_answer_is_neither_read_whole_nor_repeated_in_the_reason(nursery):
    receiver = await Receiver(statuses=(500,), answer_body=b"x" * (1024 * 1024)).start(nursery)
    target, allow = local(receiver)

    with pytest.raises(DeliveryFailed) as failure:
        await send(target, allow)

    assert failure.value.reason.startswith("webhook 127.0.0.1 answered HTTP 500")
    assert len(failure.value.reason) <= 300


async def test_a_receiver_that_never_answers_is_transient_after_the_timeout(nursery):
    receiver = await Receiver(stall=True).start(nursery)
    target, allow = local(receiver)

    with pytest.raises(DeliveryFailed) as failure:
        await send(target, allow, timeout_s=0.5)

    assert not failure.value.permanent and "did not answer within 0.5 s" in failure.value.reason
    assert len(receiver.requests) == 1


async def test_a_cancelled_delivery_ends_at_once_without_a_verdict(nursery):
    receiver = await Receiver(stall=True).start(nursery)
    target, allow = local(receiver)

    with trio.move_on_after(0.3) as scope:
        await send(target, allow, timeout_s=60.0)

    assert scope.cancelled_caught


async def test_a_refused_connection_is_transient():
    target, allow = local(Receiver(port=unused_port()))

    with pytest.raises(DeliveryFailed) as failure:
        await send(target, allow)

    assert not failure.value.permanent and "could not connect" in failure.value.reason


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("https://127.0.0.1/hook", "must not target a loopback address (127.0.0.1)"),
        ("https://127.1/hook", "loopback address (127.0.0.1)"),
        ("https://2130706433/hook", "loopback address (127.0.0.1)"),
        ("https://localhost/hook", "must not target a local name (localhost)"),
        ("https://api.localhost/hook", "local name"),
        ("https://printer.local/hook", "local name"),
        ("https://[::1]/hook", "loopback address (::1)"),
        ("https://10.1.2.3/hook", "must not target a private address (10.1.2.3)"),
        ("https://192.168.0.7:8443/hook", "private address (192.168.0.7)"),
        ("https://[fd12::7]/hook", "private address (fd12::7)"),
        ("https://169.254.169.254/latest/meta-data", "link-local address (169.254.169.254)"),
        ("https://[fe80::1]/hook", "link-local address"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback address (127.0.0.1 inside"),
        ("https://[2002:a00:1::]/hook", "private address (10.0.0.1 inside"),
        ("https://[64:ff9b::a9fe:a9fe]/hook", "link-local address (169.254.169.254 inside"),
        ("https://0.0.0.0/hook", "unspecified address (0.0.0.0)"),
        ("https://[::]/hook", "unspecified address"),
        ("https://100.64.0.1/hook", "shared (CGNAT) address (100.64.0.1)"),
        ("https://224.0.0.1/hook", "multicast address"),
        ("https://240.0.0.1/hook", "address (240.0.0.1)"),
        ("http://hooks.example.com/hook", "must use https"),
        ("https://user:pass@hooks.example.com/hook", "must not carry a user name or password"),
        ("https://@hooks.example.com/hook", "must not carry a user name or password"),
        ("https://hooks.example.com/hook#part", "must not have a fragment"),
        ("https://hooks.example.com:0/hook", "port must be 1 to 65535"),
        ("https://hooks.example.com:70000/hook", "port must be 1 to 65535"),
        ("https://metadata/computeMetadata", "must be a full domain name"),
        ("ftp://hooks.example.com/hook", "must start with https://"),
        ("hooks.example.com/hook", "must start with https://"),
        ("https:///hook", "needs a host"),
        ("https://hooks.example.com/a b", "must not contain spaces"),
        ("https://hooks.example.com/\nhook", "control characters"),
        ("https://hooks.example.com\\@127.0.0.1/", "backslashes"),
        ("https://[fe80::1%25eth0]/hook", "not a valid host"),
        ("https://hooks.example.com/" + "a" * 2048, "at most 2048 characters"),
    ],
)
def test_a_url_the_hub_must_not_reach_is_refused_at_registration(url, complaint):
    with pytest.raises(Invalid, match=r"^webhook url") as refusal:
        check_webhook_url(url, allow_hosts=frozenset(), hub_origins=NO_ORIGINS)

    assert complaint in refusal.value.message


def test_a_public_url_is_kept_in_its_canonical_form():
    target = check_webhook_url(
        "HTTPS://Hooks.Bücher.Example:443/in/päth?team=ü&x=1",
        allow_hosts=frozenset(),
        hub_origins=NO_ORIGINS,
    )

    assert (target.scheme, target.host, target.port) == (
        "https",
        "hooks.xn--bcher-kva.example",
        443,
    )
    assert target.target == "/in/p%C3%A4th?team=%C3%BC&x=1"
    assert target.url == "https://hooks.xn--bcher-kva.example/in/p%C3%A4th?team=%C3%BC&x=1"
    assert target.address is None


def test_an_allow_listed_host_may_be_private_and_plain_http_on_its_port_only():
    allow = frozenset({"10.0.0.5:8080", "hooks.internal"})

    assert (
        check_webhook_url(
            "http://10.0.0.5:8080/in", allow_hosts=allow, hub_origins=NO_ORIGINS
        ).address
        is not None
    )
    assert check_webhook_url("http://hooks.internal/in", allow_hosts=allow, hub_origins=NO_ORIGINS)
    with pytest.raises(Invalid, match="private address"):
        check_webhook_url("https://10.0.0.5:8081/in", allow_hosts=allow, hub_origins=NO_ORIGINS)


@pytest.mark.parametrize(
    "url",
    [
        "https://hub.example/api/vendor-connections/groups",
        "https://HUB.example:443/x",
        "http://127.0.0.1:8080/api",
    ],
)
def test_the_hub_itself_is_refused_even_when_allow_listed(url):
    allow = frozenset({"hub.example", "127.0.0.1:8080"})
    origins = frozenset({"https://hub.example", "http://127.0.0.1:8080"})

    with pytest.raises(Invalid, match="must not target the hub itself"):
        check_webhook_url(url, allow_hosts=allow, hub_origins=origins)


def test_another_port_of_the_hubs_host_is_not_the_hub():
    origins = frozenset({"https://hub.example"})

    assert check_webhook_url(
        "https://hub.example:8443/hook", allow_hosts=frozenset(), hub_origins=origins
    )


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "10.1.2.3",
        "169.254.169.254",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "100.64.0.1",
        "localhost",
    ],
)
async def test_a_non_public_address_is_refused_at_delivery_too(nursery, host):
    """Registered while allow-listed, delivered after the allow-list dropped it: the check at
    delivery stands on its own. `localhost` is a name that resolves to loopback."""
    receiver = await Receiver().start(nursery)
    url = f"http://{host}:{receiver.port}/hook"
    allow = frozenset({canonical_host(host)})
    target = check_webhook_url(url, allow_hosts=allow, hub_origins=NO_ORIGINS)

    with pytest.raises(DeliveryFailed) as failure:
        await send(target, frozenset())

    assert failure.value.permanent and "nothing sent" in failure.value.reason
    assert receiver.requests == []


async def test_a_name_is_refused_when_any_of_its_addresses_is_not_public():
    target = WebhookTarget(
        url="https://localhost/", scheme="https", host="localhost", port=443, target="/"
    )

    with pytest.raises(DeliveryFailed, match="resolves to a loopback address") as failure:
        await resolve_public(target, allow_hosts=frozenset())
    assert failure.value.permanent


async def test_an_allow_listed_name_resolves_to_what_it_is():
    target = WebhookTarget(
        url="https://localhost/", scheme="https", host="localhost", port=443, target="/"
    )

    addresses = await resolve_public(target, allow_hosts=frozenset({"LOCALHOST:443"}))

    assert addresses and all(a.is_loopback for a in addresses)


async def test_https_reaches_the_vetted_address_and_verifies_the_name(nursery, tmp_path):
    ca = make_ca(tmp_path, names=("localhost",), addresses=())
    receiver = await Receiver().start(nursery, ca.server_context())
    allow = frozenset({f"localhost:{receiver.port}"})
    target = check_webhook_url(
        f"https://localhost:{receiver.port}/hook", allow_hosts=allow, hub_origins=NO_ORIGINS
    )

    assert await send(target, allow, ssl_context=ca.client_context()) == 200

    [request] = receiver.requests
    assert request.server_name == "localhost"
    assert request.headers["host"] == f"localhost:{receiver.port}"


async def test_https_refuses_a_certificate_for_another_name(nursery, tmp_path):
    ca = make_ca(tmp_path, names=("hooks.example.com",), addresses=())
    receiver = await Receiver().start(nursery, ca.server_context())
    allow = frozenset({f"localhost:{receiver.port}"})
    target = check_webhook_url(
        f"https://localhost:{receiver.port}/hook", allow_hosts=allow, hub_origins=NO_ORIGINS
    )

    with pytest.raises(DeliveryFailed, match="certificate not trusted") as failure:
        await send(target, allow, ssl_context=ca.client_context())

    assert not failure.value.permanent
    assert receiver.requests == []


async def test_https_refuses_a_certificate_from_an_unknown_authority(nursery, tmp_path):
    ca = make_ca(tmp_path)
    receiver = await Receiver().start(nursery, ca.server_context())
    allow = frozenset({f"127.0.0.1:{receiver.port}"})
    target = check_webhook_url(
        f"https://127.0.0.1:{receiver.port}/hook", allow_hosts=allow, hub_origins=NO_ORIGINS
    )

    with pytest.raises(DeliveryFailed, match="certificate not trusted"):
        await send(target, allow)  # the system's authorities: they never signed the test's CA

    assert receiver.requests == []


@pytest.mark.parametrize(
    ("option", "value"), [("event", "Mention\r\nX: y"), ("delivery_id", "id with spaces")]
)
async def test_header_values_are_checked_before_anything_is_sent(option, value):
    target = WebhookTarget(
        url="https://hooks.example.com/",
        scheme="https",
        host="hooks.example.com",
        port=443,
        target="/",
    )

    with pytest.raises(ValueError, match=option):
        await send(target, frozenset(), **{option: value})
