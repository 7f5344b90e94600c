"""The SSRF guard: a webhook may only reach the public internet, never the hub's own network.

A webhook URL is chosen by a vendor, and the hub POSTs to it from inside its network, so without
a guard a URL could make the hub talk to its database, a cloud's metadata service
(169.254.169.254) or itself. Two checks stand in the way:

- `check_webhook_url`, when the URL is registered: https, a host, no credentials or fragment; an
  address written in the URL must be public, a name must not be a local one (`localhost`, a
  single label), and the hub's own origins are refused outright.
- `resolve_public`, at every delivery: the name is resolved, and if ANY of its addresses is not
  public nothing is sent. The delivery then connects to one of those very addresses (never
  resolving the name again, which would let a DNS answer change in between: DNS rebinding),
  while TLS still verifies the certificate against the name.

HUB_WEBHOOK_ALLOW_HOSTS names the exceptions (`host` or `host:port`): a receiver inside the
network that an operator vouches for, reached even on a private address and over plain http.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import trio

from hub.config import canonical_host
from hub.errors import Invalid
from hub.notifications.failures import DeliveryFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

URL_MAX = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}

# Names that never lead to the public internet: loopback (RFC 6761), mDNS on the local link
# (RFC 6762), home networks (RFC 8375), the private-use TLD (ICANN, 2024) and a common default.
LOCAL_SUFFIXES = ("localhost", "local", "home.arpa", "internal", "localdomain")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: a public IPv4 address behind NAT64
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291, deprecated
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
# Characters a path or query keeps as they are; anything else (spaces cannot occur, non-ASCII
# can) is percent-encoded so the request line is ASCII.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A webhook URL that passed `check_webhook_url`, in the parts a delivery needs.

    `host` is in `canonical_host` form (an IPv6 address in brackets); `address` is set when the
    URL names an address rather than a host name; `target` is the request target (path and
    query). A URL may carry a token in its path or query, so messages name only the host.
    """

    url: str
    scheme: str
    host: str
    port: int
    target: str
    address: IPAddress | None = None

    @property
    def server_hostname(self) -> str:
        """The name TLS sends (SNI) and verifies the certificate against."""
        return str(self.address) if self.address is not None else self.host

    @property
    def host_header(self) -> str:
        """The Host header: the port only when it is not the scheme's own."""
        return _host_header(self.scheme, self.host, self.port)


def check_webhook_url(
    url: str, *, allow_hosts: frozenset[str], hub_origins: frozenset[str]
) -> WebhookTarget:
    """The target `url` names, or `Invalid` saying why the hub will not send to it.

    `allow_hosts` are HUB_WEBHOOK_ALLOW_HOSTS's entries; `hub_origins` the hub's own public
    origins (`https://hub.example`), refused whatever the allow-list says: a webhook into the
    hub itself would let a vendor drive its API with the hub's own requests.
    """
    if len(url) > URL_MAX:
        raise Invalid(f"webhook url must be at most {URL_MAX} characters")
    # urlsplit quietly drops tabs and line breaks, and parsers disagree on backslashes: a URL
    # with any of them would be checked as one thing and sent as another.
    if not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        raise Invalid("webhook url must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise Invalid("webhook url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise Invalid("webhook url must start with https://")
    if "#" in url:
        raise Invalid("webhook url must not have a fragment")
    if "@" in parts.netloc:
        raise Invalid("webhook url must not carry a user name or password")
    if not parts.hostname:
        raise Invalid("webhook url needs a host")
    try:
        host = canonical_host(parts.hostname)
    except ValueError:
        raise Invalid("webhook url host is not a valid host name or address") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise Invalid("webhook url port must be 1 to 65535")
    port = port or DEFAULT_PORTS[scheme]
    address = _literal(host)

    hub = {_origin(origin) for origin in hub_origins}
    if (host, port) in hub:
        raise Invalid("webhook url must not target the hub itself")
    allowed = is_allowed(host, port, allow_hosts)
    if scheme == "http" and not allowed:
        raise Invalid(
            "webhook url must use https (http only for a host in HUB_WEBHOOK_ALLOW_HOSTS)"
        )
    if not allowed:
        if address is not None:
            refusal = non_public(address)
            if refusal is not None:
                raise Invalid(f"webhook url must not target {refusal}")
        elif host.endswith(tuple(f".{s}" for s in LOCAL_SUFFIXES)) or host in LOCAL_SUFFIXES:
            raise Invalid(f"webhook url must not target a local name ({host})")
        elif "." not in host:
            # A single label is completed by the resolver's search domains: an internal host.
            raise Invalid("webhook url host must be a full domain name, like hooks.example.com")

    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return WebhookTarget(
        url=f"{scheme}://{_host_header(scheme, host, port)}{target}",
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        address=address,
    )


async def resolve_public(target: WebhookTarget, *, allow_hosts: frozenset[str]) -> list[IPAddress]:
    """The addresses to connect to for `target`, resolved now; DeliveryFailed (permanent) if any
    of them is not public, unless its host is allow-listed. Connect only to these: resolving the
    name again could give another answer."""
    if target.address is not None:
        addresses: list[IPAddress] = [target.address]
    else:
        try:
            infos = await trio.socket.getaddrinfo(
                target.host, target.port, type=trio.socket.SOCK_STREAM
            )
        except trio.socket.gaierror as error:
            raise DeliveryFailed(
                f"webhook host {target.host} could not be resolved ({error.strerror})"
            ) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise DeliveryFailed(f"webhook host {target.host} has no address")
    if is_allowed(target.host, target.port, allow_hosts):
        return addresses
    for address in addresses:
        refusal = non_public(address)
        if refusal is not None:
            raise DeliveryFailed(
                f"webhook host {target.host} resolves to {refusal}; nothing sent",
                permanent=True,
            )
    return addresses


def is_allowed(host: str, port: int, allow_hosts: Iterable[str]) -> bool:
    """Whether HUB_WEBHOOK_ALLOW_HOSTS names this host, on any port or on this one."""
    entries = {entry.lower() for entry in allow_hosts}
    return host in entries or f"{host}:{port}" in entries


def non_public(address: IPAddress) -> str | None:
    """What kind of non-public address `address` is ("a private address (10.0.0.5)"), or None
    when it is a public one. An IPv6 address that carries an IPv4 one (mapped, NAT64, 6to4,
    Teredo) is judged by that too: it is where the packets end up."""
    if isinstance(address, ipaddress.IPv6Address):
        for carried in _carried(address):
            kind = _kind(carried)
            if kind is not None:
                return f"{kind} ({carried} inside {address})"
        if address.ipv4_mapped is not None or address in _NAT64:
            # Public inside: judged by the IPv4 address alone (NAT64's prefix is "reserved").
            return None
    kind = _kind(address)
    return f"{kind} ({address})" if kind is not None else None


def _carried(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, NAT64, 6to4, a Teredo client."""
    carried = [address.ipv4_mapped, address.sixtofour, address.teredo and address.teredo[1]]
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in carried if a]


def _kind(address: IPAddress) -> str | None:
    """The first non-public kind `address` is, by ipaddress's own properties where they say it;
    multicast and site-local are checked apart because `is_global` lets them through."""
    v6 = isinstance(address, ipaddress.IPv6Address)
    kinds = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (not v6 and address in _SHARED, "a shared (CGNAT) address"),
        (v6 and address in _IPV4_COMPATIBLE, "an IPv4-compatible address"),
        (v6 and address.is_site_local, "a site-local address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    )
    return next((kind for matches, kind in kinds if matches), None)


def _host_header(scheme: str, host: str, port: int) -> str:
    return host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"


def _literal(host: str) -> IPAddress | None:
    """The address a canonical host is, or None for a name."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _origin(origin: str) -> tuple[str, int]:
    """An origin's host and port, to compare with a URL's (the same server on the same port is
    the hub whatever the scheme)."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin")
    default = 443 if scheme in ("https", "wss") else 80
    return canonical_host(parts.hostname), parts.port or default
