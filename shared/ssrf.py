"""The SSRF guard for webhook URLs: resolve the host, check every address it resolves to, and hand back the
checked addresses so the caller connects to one of them (a second lookup could answer differently: DNS
rebinding). Used at submit (422) and again at every delivery."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from shared.errors import FieldError, WebhookRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Cloud metadata services; link-local ones are refused anyway, these are named so the reason is clear.
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")})


@dataclass(frozen=True)
class Target:
    """A URL that passed the guard, with the addresses that were checked."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Allowlist:
    """Private targets a deployment (MEDQ_WEBHOOK_ALLOW) or a tenant admits: CIDRs or exact host names."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def admits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def admits_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, allow: Allowlist, *, resolve: Resolver = system_resolver) -> Target:
    """The URL as a checked Target, or WebhookRefused naming the reason."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise _refused("the webhook URL must be an absolute https:// URL")
    if parts.username or parts.password:
        raise _refused("the webhook URL must not carry credentials")
    port = _port(parts)
    host_allowed = allow.admits_host(host)
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    except (OSError, UnicodeError, ValueError) as exc:
        raise _refused(f"the host {host} does not resolve: {exc}") from exc
    if not addresses:
        raise _refused(f"the host {host} does not resolve")
    for address in addresses:
        reason = _forbidden(address)
        if reason and not (host_allowed or allow.admits_address(address)):
            raise _refused(f"{host} resolves to {address}, a {reason} address")
    if parts.scheme == "http" and not all(host_allowed or allow.admits_address(a) for a in addresses):
        raise _refused("plain http:// is accepted only for allowlisted targets; use https://")
    return Target(url=url, scheme=parts.scheme, host=host, port=port, addresses=tuple(str(a) for a in addresses))


def _port(parts: SplitResult) -> int:
    try:
        explicit = parts.port
    except ValueError as exc:
        raise _refused(f"bad port in the webhook URL: {exc}") from exc
    return explicit or (443 if parts.scheme == "https" else 80)


def _forbidden(address: IPAddress) -> str | None:
    """Why an address may not be called, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden(address.ipv4_mapped)
    if address in METADATA:
        return "cloud metadata"
    for reason, flag in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                         ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                         ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return reason
    return None if address.is_global else "non-public"


def _refused(message: str) -> WebhookRefused:
    return WebhookRefused(message, errors=[FieldError("webhook.url", message)])
