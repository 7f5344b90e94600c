"""The app's URL matcher answers exactly as Werkzeug's and leaves no garbage cycle per request."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from werkzeug.routing import Map, Rule
from werkzeug.routing.exceptions import NoMatch, RequestPath
from werkzeug.routing.matcher import StateMachineMatcher

from hub.auth import TokenVerifier
from hub.http.app import BASE_PATH, create_app
from hub.http.routing import AcyclicMatcher
from tests.conftest import make_settings

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


@pytest.fixture
def url_map(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")
    # Routing needs no storage: the app only keeps a reference to it.
    return create_app(settings, None, TokenVerifier(settings)).url_map  # type: ignore[arg-type]


def werkzeug_matcher(url_map) -> StateMachineMatcher:
    matcher = StateMachineMatcher(url_map.merge_slashes)
    for rule in url_map.iter_rules():
        matcher.add(rule)
    matcher.update()
    return matcher


def paths(url_map) -> Iterator[str]:
    """Every rule's path with good and bad values, trailing and doubled slashes, and strays."""
    some_id = str(uuid.uuid4())
    for rule in url_map.iter_rules():
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<uuid:{name}>", "{id}").replace(f"<{name}>", "{id}")
        for value in (some_id, "not-a-uuid", some_id.upper()):
            filled = path.replace("{id}", value)
            yield filled
            yield filled + "/"
            yield filled.replace("/", "//", 2)
            yield filled + "/extra"
    yield from ("/", BASE_PATH, BASE_PATH + "/", "/nothing/here", BASE_PATH + "/threads//")


def outcome(matcher, path: str, method: str, websocket: bool = False):
    try:
        rule, values = matcher.match("", path, method, websocket)
    except NoMatch as miss:
        return ("no match", sorted(miss.have_match_for), miss.websocket_mismatch)
    except RequestPath as redirect:
        return ("redirect", redirect.path_info)
    return ("match", rule.endpoint, values)


def test_every_route_matches_as_werkzeug_matches_it(url_map):
    ours = url_map._matcher
    assert isinstance(ours, AcyclicMatcher)
    theirs = werkzeug_matcher(url_map)
    checked = set()
    for path in paths(url_map):
        for method in METHODS:
            for websocket in (False, True):
                expected = outcome(theirs, path, method, websocket)
                assert outcome(ours, path, method, websocket) == expected, (path, method)
                checked.add(expected[0])
    assert checked == {"match", "no match", "redirect"}


@contextmanager
def collector_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def garbage_after_matching(matcher, path: str) -> int:
    with collector_paused():
        for _ in range(100):
            matcher.match("", path, "GET", False)
        return gc.collect()


def test_matching_a_request_leaves_nothing_for_the_cycle_collector(url_map):
    path = f"{BASE_PATH}/threads/{uuid.uuid4()}"

    assert garbage_after_matching(url_map._matcher, path) == 0
    # Werkzeug's own matcher leaves a cycle per match; if a release stops doing so,
    # hub.http.routing can go.
    assert garbage_after_matching(werkzeug_matcher(url_map), path) >= 100


def test_rules_the_app_does_not_use_yet_match_as_werkzeug_matches_them():
    """Trailing-slash rules, relaxed slashes, websockets, defaults and catch-all paths."""
    rules = [
        Rule("/folder/", endpoint="folder"),
        Rule("/relaxed/", endpoint="relaxed", strict_slashes=False),
        Rule("/items/<int:n>", endpoint="item", methods=["GET"]),
        Rule("/items/<int:n>", endpoint="item_put", methods=["PUT"]),
        Rule("/live", endpoint="live", websocket=True),
        Rule("/page", endpoint="page", defaults={"n": 1}),
        Rule("/files/<path:rest>", endpoint="files"),
        Rule("/<a>/<b>", endpoint="pair"),
    ]
    ours, theirs = (Map([r.empty() for r in rules]) for _ in range(2))
    ours._matcher = AcyclicMatcher(ours.merge_slashes)
    for rule in ours.iter_rules():
        ours._matcher.add(rule)
    ours._matcher.update()
    for path in (
        "/folder", "/folder/", "/relaxed", "/relaxed/", "/items/3", "/items/x", "/items//3",
        "/live", "/page", "/files/a/b/c", "/files/", "/x/y", "/x/y/", "/x", "//folder//",
    ):  # fmt: skip
        for method in ("GET", "PUT", "POST"):
            for websocket in (False, True):
                assert outcome(ours._matcher, path, method, websocket) == outcome(
                    theirs._matcher, path, method, websocket
                ), (path, method, websocket)
