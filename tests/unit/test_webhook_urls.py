"""Where a webhook may go: langgraph.json's `webhooks.url` policy, as the API checks it when a run
or cron names a URL. The resolver is the system's `socket.getaddrinfo`, replaced here by a table
(DNS is not ours); every other check is the policy's own. Each SSRF case is one parametrized id:
the issue counts them (`pytest -k ssrf` lists them)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from stepgraph.engine import ConfigError, WebhookUrlPolicy, WebhookUrlRefused
from stepgraph.engine.webhook_urls import check_webhook_url, resolve_webhook_host
from stepgraph.engine.webhooks import webhook_config

DEPLOYED = WebhookUrlPolicy().for_deployment(local_network=False)
DEV = WebhookUrlPolicy().for_deployment(local_network=True)
# A receiver on the local network is allowed, as langgraph.json can say: the always-blocked
# ranges must stay blocked all the same.
OPEN = WebhookUrlPolicy(disable_loopback=False, disable_private_ips=False)
NO_LOOPBACK = WebhookUrlPolicy(disable_loopback=True, disable_private_ips=False)
STRICT = WebhookUrlPolicy.from_config(
    {"allowed_domains": ["hooks.example.com", "*.corp.example"], "allowed_ports": [443, 8443]}
)

DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "a.corp.example": ["93.184.216.35"],
    "rebind.example.com": ["127.0.0.1"],  # a public-looking name that answers loopback
    "split.example.com": ["93.184.216.36", "169.254.169.254"],  # one good address, one metadata
    "six.example.com": ["::ffff:10.0.0.7"],  # a private IPv4 address dressed as IPv6
    "internal.example.com": ["10.1.2.3"],
}


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in DNS:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in DNS[host]
            ]
        if isinstance(host, str) and host.endswith(".example.com"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)  # IP literals and their odd forms: the system's own parsing

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# (policy, URL, what the refusal says)
SSRF = {
    "ssrf-metadata-ip": (OPEN, "http://169.254.169.254/latest/meta-data/iam/", "cloud metadata"),
    "ssrf-metadata-ipv6": (OPEN, "http://[fd00:ec2::254]/latest", "cloud metadata"),
    "ssrf-metadata-ecs": (OPEN, "http://169.254.170.2/v2/credentials", "cloud metadata"),
    "ssrf-metadata-name": (OPEN, "http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    "ssrf-name-resolving-to-loopback": (
        NO_LOOPBACK,
        "https://rebind.example.com/hook",
        "resolves to 127.0.0.1, a loopback",
    ),
    "ssrf-one-resolved-address-is-metadata": (OPEN, "https://split.example.com/hook", "resolves to 169.254.169.254"),
    "ssrf-loopback-ip": (NO_LOOPBACK, "http://127.0.0.1:2024/runs", "loopback"),
    "ssrf-loopback-short-form": (NO_LOOPBACK, "http://127.1/", "loopback"),
    "ssrf-loopback-decimal-form": (NO_LOOPBACK, "http://2130706433/", "loopback"),
    "ssrf-loopback-ipv6": (NO_LOOPBACK, "http://[::1]:8080/", "loopback"),
    "ssrf-loopback-ipv4-mapped": (NO_LOOPBACK, "http://[::ffff:127.0.0.1]/", "loopback"),
    "ssrf-localhost-name": (NO_LOOPBACK, "http://localhost:8000/", "loopback"),
    "ssrf-loopback-deployed-default": (DEPLOYED, "http://127.0.0.1/", "loopback"),
    "ssrf-private-range-deployed-default": (DEPLOYED, "http://10.0.0.5/hook", "a private address"),
    "ssrf-private-range-172": (DEPLOYED, "http://172.16.3.4/", "a private address"),
    "ssrf-private-range-by-name": (DEPLOYED, "https://internal.example.com/", "resolves to 10.1.2.3, a private"),
    "ssrf-private-ipv6-mapped-name": (DEPLOYED, "https://six.example.com/", "a private address"),
    "ssrf-private-ula": (DEPLOYED, "http://[fd12:3456::1]/", "a private address"),
    "ssrf-link-local": (OPEN, "http://169.254.10.10/", "a link-local address"),
    "ssrf-link-local-ipv6": (OPEN, "http://[fe80::1]/", "a link-local address"),
    "ssrf-multicast": (OPEN, "http://224.0.0.251/", "a multicast address"),
    "ssrf-multicast-ipv6": (OPEN, "http://[ff02::1]/", "a multicast address"),
    "ssrf-unspecified": (OPEN, "http://0.0.0.0:8080/", "an unspecified address"),
    "ssrf-documentation-192-0-2": (OPEN, "http://192.0.2.10/", "a documentation address"),
    "ssrf-documentation-198-51-100": (OPEN, "http://198.51.100.1/", "a documentation address"),
    "ssrf-documentation-203-0-113": (OPEN, "http://203.0.113.9/", "a documentation address"),
    "ssrf-documentation-ipv6": (OPEN, "http://[2001:db8::1]/", "a documentation address"),
    "ssrf-reserved": (OPEN, "http://240.0.0.1/", "a reserved address"),
    "ssrf-port-not-allowed": (STRICT, "https://hooks.example.com:9000/", "port 9000 not allowed"),
    "ssrf-default-port-not-allowed": (
        WebhookUrlPolicy(allowed_ports=frozenset({8443})),
        "https://hooks.example.com/",
        "port 443",
    ),
    "ssrf-domain-not-allowed": (STRICT, "https://evil.example.com/", "domain evil.example.com not allowed"),
    "ssrf-wildcard-does-not-match-apex": (STRICT, "https://corp.example/", "domain corp.example not allowed"),
    "ssrf-http-when-https-required": (STRICT, "http://hooks.example.com:443/", "must use https"),
    "ssrf-relative-url": (OPEN, "/threads", "absolute http"),
    "ssrf-other-scheme": (OPEN, "file:///etc/passwd", "absolute http"),
    "ssrf-too-long": (STRICT, "https://hooks.example.com/" + "a" * 2048, "too long"),
}


@pytest.mark.parametrize("policy,url,reason", list(SSRF.values()), ids=list(SSRF))
def test_each_ssrf_case_is_refused(policy: WebhookUrlPolicy, url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        check_webhook_url(policy, url)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "policy,url",
    [
        (DEPLOYED, "https://hooks.example.com/hook"),  # public: allowed by default, http too
        (DEPLOYED, "http://hooks.example.com:8080/hook"),
        (DEV, "http://127.0.0.1:2024/hook"),  # stepgraph dev: a receiver on this machine
        (DEV, "http://localhost:9000/hook"),
        (DEV, "http://192.168.1.20/hook"),
        (STRICT, "https://hooks.example.com/hook"),
        (STRICT, "https://a.corp.example:8443/x?y=1"),  # a subdomain of the wildcard, an allowed port
        (OPEN, "https://rebind.example.com/"),  # loopback allowed by langgraph.json
    ],
)
def test_what_the_policy_allows(policy: WebhookUrlPolicy, url: str) -> None:
    check_webhook_url(policy, url)


def test_a_name_that_does_not_resolve_now_is_left_to_the_delivery_check() -> None:
    """DNS down for a moment, or stepgraph dev offline: the run is not refused for it; its
    delivery resolves the name and checks it again (a NameResolutionError there is retried)."""
    check_webhook_url(DEPLOYED, "https://nowhere.example.com/")
    with pytest.raises(socket.gaierror):
        resolve_webhook_host(DEPLOYED, "nowhere.example.com", 443)


def test_delivery_connects_to_the_addresses_it_checked() -> None:
    """What the connection is handed: the checked addresses, resolved once, in the resolver's order."""
    DNS["twice.example.com"] = ["93.184.216.40", "2606:2800:220:1::1", "93.184.216.40"]
    try:
        assert resolve_webhook_host(DEPLOYED, "Twice.Example.com.", 443) == ["93.184.216.40", "2606:2800:220:1::1"]
    finally:
        del DNS["twice.example.com"]


def test_the_url_block_of_langgraph_json() -> None:
    """The peer's names; a `url` object makes https required and URLs at most 2048 long unless it
    says otherwise; loopback and private addresses are the deployment's call unless it says."""
    assert webhook_config({}).url == WebhookUrlPolicy()  # no block: http allowed, 4096 characters
    policy = webhook_config({"url": {"allowed_domains": ["*.Corp.Example"]}}).url
    assert policy.require_https and policy.max_url_length == 2048 and policy.allowed_domains == ("*.corp.example",)
    assert policy.for_deployment(local_network=True).disable_loopback is False
    assert policy.for_deployment(local_network=False).disable_private_ips is True
    said = WebhookUrlPolicy.from_config(
        {"require_https": False, "disable_loopback": True, "disable_private_ips": False}
    )
    assert said.for_deployment(local_network=True) == said  # what langgraph.json says wins
    assert not said.require_https
    for bad in (
        {"allowed_ports": ["443"]},
        {"allowed_domains": "example.com"},
        {"disable_loopback": "no"},
        {"max_url_length": 0},
        {"allow_everything": True},
    ):
        with pytest.raises(ConfigError, match=r"webhooks\.url"):
            webhook_config({"url": bad})
