"""Generated requests thrown at the REST port over raw TCP: methods, paths, tokens, header sets
with duplicate and conflicting framing headers, bodies up to a few MB sent whole (and the
connection kept or half-closed), sent in part, or not sent. Whatever arrives, the hub answers with
a well-formed HTTP response or closes the connection; it never answers 5xx; a complete request
is answered even when the client half-closes after it; a connection it keeps open serves the
next request; and a fresh connection's `/healthz` is answered afterwards.

The one 5xx allowed is h11's 501 for a transfer coding other than chunked, sent with
`Connection: close` before the app sees the request (RFC 9112 §6.1: "SHOULD respond with 501").
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

import hypothesis
import trio
from hypothesis import strategies as st

from hub.app import Running
from hub.http.app import BASE_PATH
from tests import fuzzcount
from tests.factories import new_member
from tests.http.wire import Connection, Malformed, chunked, request

EXAMPLES = 300
GUARD_S = 15
MB = 1024 * 1024

METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"]
PATHS = [
    "/healthz",
    "/readyz",
    "/",
    "/nowhere",
    f"{BASE_PATH}/healthz",
    f"{BASE_PATH}/groups",
    f"{BASE_PATH}/groups?limit=2",
    f"{BASE_PATH}/threads",
    f"{BASE_PATH}/threads/{uuid.UUID(int=7)}",
    f"{BASE_PATH}/threads/not-a-uuid",
    f"{BASE_PATH}/audit",
    f"{BASE_PATH}/openapi.json",
]
FRAMING = st.sampled_from(
    [
        ("Content-Length", "{n}"),
        ("Content-Length", "{n}"),  # duplicated when drawn twice: h11 folds equal values
        ("Content-Length", "0"),
        ("Content-Length", "{n_plus}"),
        ("Content-Length", "-1"),
        ("Content-Length", "abc"),
        ("Content-Length", "{n}, {n}"),
        ("Content-Length", "1, 2"),
        ("Content-Length", "99999999999999999999999"),
        ("Transfer-Encoding", "chunked"),
        ("Transfer-Encoding", "Chunked"),
        ("Transfer-Encoding", "gzip"),
        ("Transfer-Encoding", "chunked, chunked"),
        ("Transfer-Encoding", "identity"),
    ]
)
OTHER_HEADERS = st.sampled_from(
    [
        ("Content-Type", "application/json"),
        ("Content-Type", "text/plain"),
        ("Expect", "100-continue"),
        ("Connection", "close"),
        ("Connection", "keep-alive"),
        ("Authorization", "Bearer not-a-token"),
        ("Authorization", "{token}"),
        ("Host", "second.host"),
        ("X-Padding", "p" * 4000),
    ]
)
SIZES = st.sampled_from([0, 1, 17, 4096, 70_000, 300_000, 1_100_000, 3 * MB])


@dataclass
class Case:
    method: str
    path: str
    headers: list[tuple[str, str]]
    size: int
    delivery: str  # "whole", "whole then half-close", "part" or "none" (both then half-close)
    json_body: bool


FRAMINGS = st.one_of(
    st.just([("Content-Length", "{n}")]),
    st.just([("Transfer-Encoding", "chunked")]),
    st.lists(FRAMING, max_size=3),
)
CASES = st.builds(
    Case,
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PATHS),
    headers=st.builds(
        lambda framing, others, framing_last: (
            others + framing if framing_last else framing + others
        ),
        FRAMINGS,
        st.lists(OTHER_HEADERS, max_size=2),
        st.booleans(),
    ),
    size=SIZES,
    delivery=st.sampled_from(["whole", "whole", "whole then half-close", "part", "none"]),
    json_body=st.booleans(),
)


def _materialize(case: Case, token: str) -> tuple[list[tuple[str, str]], bytes, bool]:
    """The case's headers with placeholders filled, the bytes that follow the head, and whether
    those bytes are exactly the body the headers declare (else some of them are not a body)."""
    headers = [
        (name, value.format(n=case.size, n_plus=case.size + 5, token=f"Bearer {token}"))
        for name, value in case.headers
    ]
    payload = (b'{"name": "' + b"x" * case.size + b'"}')[: case.size]
    if not case.json_body:
        payload = b"\xff" * case.size
    lengths = {v for n, v in headers if n.lower() == "content-length"}
    codings = [v for n, v in headers if n.lower() == "transfer-encoding"]
    if codings == ["chunked"] and not lengths:
        return headers, chunked(payload), True
    if not codings and lengths <= {str(case.size)}:
        return headers, payload if lengths else b"", True
    return headers, payload, False


def _unsupported_coding(headers: list[tuple[str, str]]) -> bool:
    codings = [v.strip().lower() for n, v in headers if n.lower() == "transfer-encoding"]
    return len(codings) > 1 or any(c != "chunked" for c in codings)


def _check(response, case: Case, headers: list[tuple[str, str]]) -> None:
    assert response.status < 500 or (
        response.status == 501 and _unsupported_coding(headers) and response.closes
    ), f"{response.status} for {case}: {response.body[:300]!r}"


async def _one(url: str, case: Case, token: str, outcomes: Counter) -> None:
    headers, body, exact = _materialize(case, token)
    keep_open = exact and case.delivery == "whole"
    # A client may half-close once its request is out; it still gets the answer.
    answer_due = exact and case.delivery == "whole then half-close"
    data = request(case.method, case.path, headers, b"")
    if case.delivery.startswith("whole"):
        data += body
    elif case.delivery == "part":
        data += body[: len(body) // 2]
    conn = await Connection.open(url)
    try:
        with trio.fail_after(GUARD_S):
            async with trio.open_nursery() as nursery:
                sent = trio.Event()

                async def send() -> None:
                    if await conn.send(data) and not keep_open:
                        try:
                            await conn.stream.send_eof()
                        except trio.BrokenResourceError:
                            pass
                    sent.set()

                nursery.start_soon(send)
                method = case.method.encode()
                for _ in range(8):  # bytes that are not a body may read as more requests
                    try:
                        response = await conn.response(method)
                    except Malformed as error:
                        raise AssertionError(f"malformed response to {case}: {error}") from None
                    if response is None:
                        assert not answer_due, f"no answer after a half-close: {case}"
                        outcomes["closed"] += 1
                        return
                    if answer_due:
                        outcomes["answered after a half-close"] += 1
                        answer_due = False
                    outcomes[response.status] += 1
                    _check(response, case, headers)
                    if response.closes:
                        assert await conn.closed_by_server(), f"open after close: {case}"
                        return
                    if keep_open:
                        break
                    method = b"GET"
                else:
                    raise AssertionError(f"more answers than requests for {case}")
                # Kept open: once the body is out (the hub must take it, read or not), the
                # next request on this connection is answered, or the hub closes the connection
                # without a word; it never leaves it hanging.
                await sent.wait()
                if not await conn.send(request("GET", "/healthz")):
                    return
                following = await conn.response()
                if following is not None:
                    assert following.status == 200, f"{following.status} after {case}"
                    outcomes["next request answered"] += 1
                    if len(body) > 64 * 1024:
                        outcomes["next answered after a body over 64 KB"] += 1
    finally:
        await conn.aclose()


async def _healthy(url: str) -> None:
    conn = await Connection.open(url)
    try:
        with trio.fail_after(GUARD_S):
            assert await conn.send(request("GET", "/healthz"))
            response = await conn.response()
        assert response is not None and response.status == 200
    finally:
        await conn.aclose()


def _run(url: str, token: str, outcomes: Counter) -> None:
    @fuzzcount.against_a_server(EXAMPLES)
    @hypothesis.given(case=CASES)
    def check(case: Case) -> None:
        outcomes["inputs"] += 1
        hypothesis.note(repr(case))
        trio.from_thread.run(_one, url, case, token, outcomes)
        trio.from_thread.run(_healthy, url)

    check()


async def test_generated_requests_get_a_well_formed_answer_or_a_close_never_a_5xx(
    hub: Running, settings
):
    member = await new_member(hub.storage, settings)
    outcomes: Counter = Counter()
    await trio.to_thread.run_sync(_run, hub.rest_url, member.token, outcomes)
    fuzzcount.count("REST raw requests (head, framing, body)", outcomes["inputs"])
    assert outcomes["inputs"] >= EXAMPLES
    await _healthy(hub.rest_url)
