"""Where a webhook may go: langgraph.json's `webhooks.url` policy (the peer's names), checked when a
run or cron names the URL (the API answers 422) and again at delivery, on the address connected to.

Always refused: cloud metadata (169.254.169.254, fd00:ec2::254, ...), link-local, multicast,
unspecified, documentation and other reserved ranges. Loopback and private ranges are refused
unless `disable_loopback` / `disable_private_ips` is false; when langgraph.json does not say, the
deployment decides (`Settings.webhook_local_network`: on under `stepgraph dev`, off deployed).

No DNS-rebinding gap: a delivery's connection resolves the name once, checks every address it
resolves to, and connects to a checked address itself, while TLS (SNI and the certificate) and
`Host` still name the host (`guarded_pool`). A delivery follows a redirect that keeps the POST
(307, 308; at most `MAX_REDIRECTS`), each hop checked whole; 301/302/303 would turn it into a GET
without the signed body, so they are not followed.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stepgraph.engine.errors import ConfigError, WebhookUrlRefused

if TYPE_CHECKING:
    from stepgraph.engine.context import Context

__all__ = [
    "MAX_REDIRECTS",
    "WebhookUrlPolicy",
    "check_run_webhook",
    "check_webhook_address",
    "check_webhook_url",
    "guarded_pool",
    "resolve_webhook_host",
    "webhook_url_policy",
]

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_POLICY_KEYS = {
    "require_https",
    "allowed_domains",
    "allowed_ports",
    "max_url_length",
    "disable_loopback",
    "disable_private_ips",
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_net = ipaddress.ip_network

# Cloud instance metadata and credential endpoints: AWS (IMDS, over IPv6 too; ECS task
# credentials; EKS Pod Identity), GCP and Azure (169.254.169.254 as well), Alibaba, OpenStack.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "fe80::a9fe:a9fe",
    )
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "host.docker.internal"})
_UNSPECIFIED = (_net("0.0.0.0/8"), _net("::/128"))
_LOOPBACK = (_net("127.0.0.0/8"), _net("::1/128"))
_LINK_LOCAL = (_net("169.254.0.0/16"), _net("fe80::/10"))
_MULTICAST = (_net("224.0.0.0/4"), _net("ff00::/8"))
_DOCUMENTATION = (
    _net("192.0.2.0/24"),
    _net("198.51.100.0/24"),
    _net("203.0.113.0/24"),
    _net("2001:db8::/32"),
    _net("3fff::/20"),
)
# RFC 1918, shared address space (carrier-grade NAT), benchmarking, IPv6 unique local.
_PRIVATE = (
    _net("10.0.0.0/8"),
    _net("172.16.0.0/12"),
    _net("192.168.0.0/16"),
    _net("100.64.0.0/10"),
    _net("198.18.0.0/15"),
    _net("fc00::/7"),
)
# IPv6 forms that carry an IPv4 address a packet may end up at: checked as that address.
_NAT64 = (_net("64:ff9b::/96"), _net("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = _net("::/96")


@dataclass(frozen=True)
class WebhookUrlPolicy:
    """langgraph.json's `webhooks.url`. `disable_loopback` / `disable_private_ips` None: not said,
    the deployment decides (`for_deployment`); a policy checked with None refuses both."""

    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()
    allowed_ports: frozenset[int] | None = None
    max_url_length: int = 4096
    disable_loopback: bool | None = None
    disable_private_ips: bool | None = None

    @classmethod
    def from_config(cls, raw: Any) -> WebhookUrlPolicy:
        """Read `webhooks.url`. As on the peer, a `url` object makes `require_https` true and
        `max_url_length` 2048 unless it sets them. Raises ConfigError."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError("webhooks.url must be an object")
        unknown = sorted(set(raw) - _POLICY_KEYS)
        if unknown:
            raise ConfigError(
                f"webhooks.url: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_POLICY_KEYS))})"
            )
        for key in ("require_https", "disable_loopback", "disable_private_ips"):
            if key in raw and not isinstance(raw[key], bool):
                raise ConfigError(f"webhooks.url.{key} must be true or false")
        domains = raw.get("allowed_domains") or []
        if not isinstance(domains, list) or not all(isinstance(d, str) and d.strip() for d in domains):
            raise ConfigError(
                "webhooks.url.allowed_domains must be a list of host names ('*.example.com' for subdomains)"
            )
        ports = raw.get("allowed_ports")
        if ports is not None and not (
            isinstance(ports, list)
            and all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports)
        ):
            raise ConfigError("webhooks.url.allowed_ports must be a list of port numbers")
        length = raw.get("max_url_length", 2048)
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ConfigError("webhooks.url.max_url_length must be a positive integer")
        return cls(
            require_https=raw.get("require_https", True),
            allowed_domains=tuple(d.strip().lower().rstrip(".") for d in domains),
            allowed_ports=frozenset(ports) if ports else None,
            max_url_length=length,
            disable_loopback=raw.get("disable_loopback"),
            disable_private_ips=raw.get("disable_private_ips"),
        )

    def for_deployment(self, *, local_network: bool) -> WebhookUrlPolicy:
        """The policy in force: what langgraph.json leaves unsaid about loopback and private
        addresses, allowed when `local_network` (stepgraph dev), refused otherwise."""
        return replace(
            self,
            disable_loopback=self.disable_loopback if self.disable_loopback is not None else not local_network,
            disable_private_ips=self.disable_private_ips if self.disable_private_ips is not None else not local_network,
        )

    def allows_domain(self, host: str) -> bool:
        """`allowed_domains` (empty: any host): an exact name, or `*.base` for base's subdomains
        (not base itself), as on the peer."""
        if not self.allowed_domains:
            return True
        return any(
            host.endswith("." + pattern[2:]) if pattern.startswith("*.") else host == pattern
            for pattern in self.allowed_domains
        )


def webhook_url_policy(ctx: Context, configured: WebhookUrlPolicy | None = None) -> WebhookUrlPolicy:
    """The policy in force: langgraph.json's (or `configured`) for this deployment."""
    policy = configured if configured is not None else ctx.graphs.webhooks.url
    return policy.for_deployment(local_network=ctx.settings.webhook_local_network)


def check_run_webhook(ctx: Context, url: str) -> None:
    """A run or cron names `url` for its webhook: refuse it (WebhookUrlRefused, the API's 422)
    before anything is written, unless the policy in force lets a webhook go there now."""
    check_webhook_url(webhook_url_policy(ctx), url)


# ---------------------------------------------------------------- addresses
def _kind(address: IPAddress) -> str | None:
    """What kind of non-public address this is (None: public)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.compressed.split("%")[0])  # without a scope id
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(address.packed[-4:])
        if embedded is None and address in _IPV4_COMPATIBLE and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _kind(embedded)
    if address in _METADATA:
        return "cloud metadata"
    for kind, networks in (
        ("unspecified", _UNSPECIFIED),
        ("loopback", _LOOPBACK),
        ("link-local", _LINK_LOCAL),
        ("multicast", _MULTICAST),
        ("documentation", _DOCUMENTATION),
        ("private", _PRIVATE),
    ):
        if any(address in net for net in networks):
            return kind
    return None if address.is_global else "reserved"


def check_webhook_address(policy: WebhookUrlPolicy, host: str, address: str) -> None:
    """Refuse `address` (one `host` resolves to, or is) unless the policy lets a webhook reach it."""
    ip = ipaddress.ip_address(address)
    kind = _kind(ip)
    if kind is None:
        return
    if kind == "loopback" and policy.disable_loopback is False:
        return
    if kind == "private" and policy.disable_private_ips is False:
        return
    where = address if host == address else f"{host} resolves to {address}"
    hint = {
        "loopback": " (webhooks.url.disable_loopback is true)",
        "private": " (webhooks.url.disable_private_ips is true)",
    }.get(kind, "")
    article = "an" if kind[0] in "aeiou" else "a"
    raise WebhookUrlRefused(f"webhook host blocked: {where}, {article} {kind} address{hint}")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve_webhook_host(policy: WebhookUrlPolicy, host: str, port: int) -> list[str]:
    """Every address `host` resolves to, once each in the resolver's order, after each passed the
    policy: any refused one refuses the host (a name that also resolves to 169.254.169.254 is not
    half safe). Raises WebhookUrlRefused, or socket.gaierror when the name does not resolve."""
    host = host.lower().rstrip(".")
    literal = _literal(host)
    if literal is not None:
        check_webhook_address(policy, str(literal), str(literal))
        return [str(literal)]
    if host in _METADATA_NAMES:
        raise WebhookUrlRefused(f"webhook host blocked: {host} names a cloud metadata service")
    if policy.disable_loopback is not False and (host in _LOOPBACK_NAMES or host.endswith(".localhost")):
        raise WebhookUrlRefused(f"webhook host blocked: {host} is loopback (webhooks.url.disable_loopback is true)")
    addresses: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in addresses:
            check_webhook_address(policy, host, address)
            addresses.append(address)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolves to no address")
    return addresses


# ---------------------------------------------------------------- URLs
@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int


def _target(policy: WebhookUrlPolicy, url: str) -> _Target:
    """The URL's scheme, host and port once its form passes the policy (no DNS)."""
    if len(url) > policy.max_url_length:
        raise WebhookUrlRefused(f"webhook URL too long: over {policy.max_url_length} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused(f"invalid webhook URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlRefused("a webhook must be an absolute http:// or https:// URL")
    if policy.require_https and scheme != "https":
        raise WebhookUrlRefused("webhook must use https (webhooks.url.require_https)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlRefused("invalid webhook URL: no host")
    port = port if port is not None else (443 if scheme == "https" else 80)
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise WebhookUrlRefused(f"webhook port {port} not allowed (webhooks.url.allowed_ports)")
    if not policy.allows_domain(host):
        raise WebhookUrlRefused(f"webhook domain {host} not allowed (webhooks.url.allowed_domains)")
    return _Target(scheme, host, port)


def check_webhook_url(policy: WebhookUrlPolicy, url: str, *, resolve: bool = True) -> None:
    """Refuse (WebhookUrlRefused) a URL the policy does not let a webhook go to: its form, and
    with `resolve` every address its host resolves to now. Delivery checks again, on the address
    it connects to: that check is the guarantee, this one answers the caller early."""
    target = _target(policy, url)
    if not resolve:
        return
    try:
        resolve_webhook_host(policy, target.host, target.port)
    except socket.gaierror as exc:
        # Unlike the peer (422), a name that does not resolve now is no reason to refuse the run:
        # DNS may be down for a moment, or this machine offline (stepgraph dev); nothing can be
        # reached through it, and its delivery resolves and checks it again.
        logger.info("webhook host %s does not resolve now (%s); checked again at delivery", target.host, exc)


# ---------------------------------------------------------------- connections
def _connect_checked(conn: Any, policy: WebhookUrlPolicy) -> socket.socket:
    """urllib3's `HTTPConnection._new_conn`, connecting only to addresses the policy passed: the
    name is resolved once here, and the socket goes to one of those very addresses."""
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.connection import create_connection

    try:
        addresses = resolve_webhook_host(policy, conn.host, conn.port)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    failure: Exception | None = None
    for address in addresses:  # as create_connection tries each address of a name in turn
        try:
            sock = create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            failure = ConnectTimeoutError(conn, f"Connection to {conn.host} ({address}) timed out: {exc}")
        except OSError as exc:
            failure = NewConnectionError(conn, f"Failed to connect to {conn.host} ({address}): {exc}")
        else:
            sys.audit("http.client.connect", conn, conn.host, conn.port)
            return sock
    assert failure is not None  # resolve_webhook_host returns at least one address
    raise failure


@functools.cache
def guarded_pool(policy: WebhookUrlPolicy) -> Any:
    """A urllib3 PoolManager whose every new connection goes through `_connect_checked`, so TLS
    (SNI, certificate) and `Host` are the URL's host while the socket reaches a checked address.
    One per policy and process: a Lambda container keeps its connections warm."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    connect: Callable[[Any], socket.socket] = functools.partial(_connect_checked, policy=policy)

    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self)

    class TLSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self)

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    manager = urllib3.PoolManager(num_pools=32, maxsize=4)
    manager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}
    return manager
