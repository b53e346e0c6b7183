"""The SSRF guard refuses private, loopback, link-local and metadata targets unless allowlisted."""

import pytest

from shared.errors import WebhookRefused
from shared.ssrf import Allowlist, check_url, system_resolver

NOBODY = Allowlist()


def fixed(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(("url", "addresses", "reason"), [
    ("https://169.254.169.254/latest/meta-data", ["169.254.169.254"], "cloud metadata"),
    ("https://hooks.example/x", ["10.1.2.3"], "private"),
    ("https://hooks.example/x", ["192.168.0.7"], "private"),
    ("https://hooks.example/x", ["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad address is enough
    ("https://hooks.example/x", ["169.254.10.1"], "link-local"),
    ("https://hooks.example/x", ["::1"], "loopback"),
    ("https://hooks.example/x", ["::ffff:10.0.0.1"], "private"),  # IPv4-mapped IPv6
    ("https://hooks.example/x", ["fd00:ec2::254"], "cloud metadata"),
    ("https://hooks.example/x", ["0.0.0.0"], "unspecified"),
])
def test_private_targets_are_refused_with_the_reason(url: str, addresses: list[str], reason: str) -> None:
    with pytest.raises(WebhookRefused) as refused:
        check_url(url, NOBODY, resolve=fixed(*addresses))
    assert reason in refused.value.detail
    assert refused.value.status == 422 and refused.value.errors[0].field == "webhook.url"


def test_a_name_resolving_to_loopback_is_refused_with_the_real_resolver() -> None:
    with pytest.raises(WebhookRefused, match="loopback"):
        check_url("https://localhost:8443/hook", NOBODY, resolve=system_resolver)


def test_public_https_target_passes_with_its_checked_addresses() -> None:
    target = check_url("https://hooks.example:8443/in?x=1", NOBODY, resolve=fixed("93.184.216.34"))
    assert (target.host, target.port, target.addresses) == ("hooks.example", 8443, ("93.184.216.34",))


@pytest.mark.parametrize("url", ["ftp://hooks.example/", "https://user:pw@hooks.example/", "https:///nohost",
                                 "http://hooks.example/"])
def test_bad_schemes_credentials_and_plain_http_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused):
        check_url(url, NOBODY, resolve=fixed("93.184.216.34"))


def test_an_unresolvable_host_is_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(WebhookRefused, match="does not resolve"):
        check_url("https://nowhere.invalid/", NOBODY, resolve=fail)


def test_allowlisted_cidr_and_host_admit_private_targets_and_plain_http() -> None:
    allow = Allowlist.parse(["10.20.0.0/16", "ris.hospital.local", " "])
    assert check_url("http://10.20.3.4:8080/h", allow, resolve=fixed("10.20.3.4")).port == 8080
    assert check_url("https://ris.hospital.local/h", allow, resolve=fixed("10.9.9.9")).addresses == ("10.9.9.9",)
    with pytest.raises(WebhookRefused):
        check_url("https://other.local/h", allow, resolve=fixed("10.21.0.1"))
