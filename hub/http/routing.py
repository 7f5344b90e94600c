"""URL matching that leaves no reference cycle behind, so a request makes no work for the
cycle collector.

Werkzeug's `StateMachineMatcher.match` (which Quart runs for every request) searches its rule
tree with a closure that calls itself: the function holds its own cell, so every request left a
function, five cells, a tuple and a set for the cycle collector. Under load they were nearly
all the cyclic garbage the hub made, and the young-generation collections that freed them
paused the hub long enough that the requests queued behind a pause set its worst latencies
(docs/performance.md, decision register: "URL matching without reference cycles").

`AcyclicMatcher` is the same search written as a method of a per-call object, line for line
Werkzeug 3.1's algorithm (BSD-3-Clause, (c) 2007 Pallets), so what matches, what 404s, 405s and
redirects is unchanged; tests/http/test_routing.py compares it with Werkzeug's on every rule of
the app.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Quart
from werkzeug.routing.converters import ValidationError
from werkzeug.routing.exceptions import NoMatch, RequestAliasRedirect, RequestPath
from werkzeug.routing.matcher import SlashRequired, State, StateMachineMatcher
from werkzeug.routing.rules import Rule


class _Search:
    """One match's search; what the closure kept in `nonlocal`s lives on the instance."""

    __slots__ = ("have_match_for", "method", "websocket", "websocket_mismatch")

    def __init__(self, method: str, websocket: bool) -> None:
        self.method = method
        self.websocket = websocket
        self.have_match_for: set[str] = set()
        self.websocket_mismatch = False

    def _acceptable(self, rule: Rule) -> bool:
        if rule.methods is not None and self.method not in rule.methods:
            self.have_match_for.update(rule.methods)
        elif rule.websocket != self.websocket:
            self.websocket_mismatch = True
        else:
            return True
        return False

    def find(self, state: State, parts: list[str], values: list[str]) -> Any:
        if parts == []:
            for rule in state.rules:
                if self._acceptable(rule):
                    return rule, values
            # A match with one more trailing slash: redirect to it, or take it where the rule
            # does not insist on its slashes.
            if "" in state.static:
                for rule in state.static[""].rules:
                    if self.websocket == rule.websocket and (
                        rule.methods is None or self.method in rule.methods
                    ):
                        if rule.strict_slashes:
                            raise SlashRequired()
                        return rule, values
            return None

        part = parts[0]
        if part in state.static:
            found = self.find(state.static[part], parts[1:], values)
            if found is not None:
                return found
        for test_part, new_state in state.dynamic:
            target, remaining = part, parts[1:]
            if test_part.final:  # consumes every remaining part
                target, remaining = "/".join(parts), []
            match = re.compile(test_part.content).match(target)
            if match is not None:
                if test_part.suffixed and match.groups()[-1] == "/":
                    remaining = [""]
                converter_groups = sorted(
                    (
                        item
                        for item in match.groupdict().items()
                        if item[0].startswith("__werkzeug_")
                    ),
                    key=lambda item: int(item[0][11:]),
                )
                found = self.find(new_state, remaining, values + [g[1] for g in converter_groups])
                if found is not None:
                    return found

        # Only a trailing slash left: rules without strict slashes match it.
        if parts == [""]:
            for rule in state.rules:
                if not rule.strict_slashes and self._acceptable(rule):
                    return rule, values
        return None


class AcyclicMatcher(StateMachineMatcher):
    def match(
        self, domain: str, path: str, method: str, websocket: bool
    ) -> tuple[Rule, dict[str, Any]]:
        search = _Search(method, websocket)
        try:
            found = search.find(self._root, [domain, *path.split("/")], [])
        except SlashRequired:
            raise RequestPath(f"{path}/") from None

        if self.merge_slashes and found is None:
            path = re.sub("/{2,}", "/", path)
            try:
                found = search.find(self._root, [domain, *path.split("/")], [])
            except SlashRequired:
                raise RequestPath(f"{path}/") from None
            if found is None or found[0].merge_slashes is False:
                raise NoMatch(search.have_match_for, search.websocket_mismatch)
            raise RequestPath(f"{path}")
        if found is None:
            raise NoMatch(search.have_match_for, search.websocket_mismatch)

        rule, values = found
        result = {}
        for name, value in zip(rule._converters.keys(), values, strict=False):
            try:
                result[str(name)] = rule._converters[name].to_python(value)
            except ValidationError as error:
                raise NoMatch(search.have_match_for, search.websocket_mismatch) from error
        if rule.defaults:
            result.update(rule.defaults)
        if rule.alias and rule.map.redirect_defaults:
            raise RequestAliasRedirect(result, rule.endpoint)
        return rule, result


def install(app: Quart) -> None:
    """Match the app's URLs with `AcyclicMatcher`. Called before any rule is added: the matcher
    holds the rule tree, and a map without one would match nothing."""
    url_map = app.url_map
    if not isinstance(getattr(url_map, "_matcher", None), StateMachineMatcher):
        raise RuntimeError("werkzeug's Map no longer keeps a StateMachineMatcher in _matcher")
    if list(url_map.iter_rules()):
        raise RuntimeError("install the matcher before the app has rules")
    url_map._matcher = AcyclicMatcher(url_map.merge_slashes)
