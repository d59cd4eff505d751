"""ip-filtering over real sockets: whitelists and blacklists of IPs and CIDRs (IPv4 and IPv6), the
client address an untrusted peer cannot forge with X-Forwarded-For and a trusted proxy can
forward, matchAllFromXForwardedFor, and entries refused at import naming the field."""

import re

import pytest
import requests

from support.apis import mock_api, proxy_api
from support.http_backends import CountingServer, url
from support.portal import portal_login, post_form

JSON = {"Accept": "application/json"}
SPOOFED = {**JSON, "X-Forwarded-For": "10.1.2.3"}


def refusal(ip):
    message = (
        f"Your IP ({ip}) or some proxies whereby your request pass through are not allowed to reach this resource."
    )
    return {"message": message, "http_status_code": 403}


def filtering(**configuration):
    step = {"name": "ip", "policy": "ip-filtering", "enabled": True, "configuration": configuration}
    return [{"name": "ip", "enabled": True, "selectors": [], "request": [step]}]


@pytest.fixture
def backend():
    counting = CountingServer()
    yield counting
    counting.stop()


def deploy(server, backend, path, **configuration):
    api = proxy_api([url(backend)], path=path)
    api["name"] = path
    api["flows"] = filtering(**configuration)
    server.deploy_api(api)
    return server.gateway + path


def test_a_whitelist_lets_the_client_in_or_refuses_it_with_gravitee_s_403_before_the_backend(shared_server, backend):
    allowed = deploy(shared_server, backend, "/in", whitelistIps=["10.0.0.0/8", "127.0.0.0/8"])
    refused = deploy(shared_server, backend, "/out", whitelistIps=["10.0.0.0/8", "2001:db8::/32"])
    assert requests.get(allowed, headers=JSON, timeout=10).status_code == 200
    answer = requests.get(refused, headers=JSON, timeout=10)
    assert answer.status_code == 403 and answer.json() == refusal("127.0.0.1")
    assert backend.methods == ["GET"]  # the allowed request alone reached it
    as_text = requests.get(refused, headers={"Accept": "text/plain"}, timeout=10)
    assert as_text.status_code == 403 and as_text.text == refusal("127.0.0.1")["message"]


def test_a_blacklist_refuses_the_client_even_when_the_whitelist_holds_it(shared_server, backend):
    listed = deploy(
        shared_server, backend, "/black", whitelistIps=["127.0.0.0/8"], blacklistIps=["::1", "127.0.0.1/32"]
    )
    # Several entries in one, comma-separated as Gravitee allows, IPv6 among them: none is the client.
    others = deploy(shared_server, backend, "/others", blacklistIps=["10.0.0.0/8, 2001:db8::/32", "fe80::1"])
    answer = requests.get(listed, headers=JSON, timeout=10)
    assert answer.status_code == 403 and answer.json() == refusal("127.0.0.1")
    assert requests.get(others, headers=JSON, timeout=10).status_code == 200
    assert backend.methods == ["GET"]


def test_an_untrusted_peer_cannot_choose_its_address_with_x_forwarded_for(shared_server, backend):
    """No GATEHOUSE_TRUSTED_PROXIES: the header is the client's own word, and changes nothing."""
    blacklisted = deploy(shared_server, backend, "/spoof-black", blacklistIps=["127.0.0.1"])
    whitelisted = deploy(shared_server, backend, "/spoof-white", whitelistIps=["10.0.0.0/8"])
    every_hop = deploy(
        shared_server, backend, "/spoof-all", whitelistIps=["10.0.0.0/8"], matchAllFromXForwardedFor=True
    )
    for target in (blacklisted, whitelisted, every_hop):
        answer = requests.get(target, headers=SPOOFED, timeout=10)
        assert answer.status_code == 403 and answer.json() == refusal("127.0.0.1"), target
    assert backend.methods == []


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_checked(start_server, backend):
    server = start_server(GATEHOUSE_TRUSTED_PROXIES="127.0.0.1/32")
    client = deploy(server, backend, "/client", whitelistIps=["10.0.0.0/8"])
    every_hop = deploy(server, backend, "/every", whitelistIps=["10.0.0.0/8"], matchAllFromXForwardedFor=True)

    def get(target, forwarded):
        return requests.get(target, headers={**JSON, "X-Forwarded-For": forwarded}, timeout=10)

    assert get(client, "10.1.2.3").status_code == 200
    # The proxy got the request from 10.1.2.3, which claims to forward for 192.168.9.9: the client is
    # 10.1.2.3 (untrusted, so its word is not taken), unless every address must pass.
    assert get(client, "192.168.9.9, 10.1.2.3").status_code == 200
    answer = get(every_hop, "192.168.9.9, 10.1.2.3")
    assert answer.status_code == 403 and answer.json() == refusal("192.168.9.9")
    answer = get(every_hop, "10.1.2.3, 192.168.9.9")
    assert answer.status_code == 403 and answer.json() == refusal("192.168.9.9")
    assert get(every_hop, "10.9.9.9, 10.1.2.3").status_code == 200
    assert backend.methods == ["GET"] * 3


def test_a_custom_ip_address_is_checked_instead_each_of_its_addresses(shared_server, backend):
    custom = deploy(
        shared_server,
        backend,
        "/custom",
        whitelistIps=["10.0.0.0/8"],
        useCustomIPAddress=True,
        customIPAddress="{#request.params['ip'][0]}",
    )
    assert requests.get(custom + "?ip=10.0.0.5", headers=JSON, timeout=10).status_code == 200
    answer = requests.get(custom, params={"ip": "10.0.0.5, 192.168.1.1"}, headers=JSON, timeout=10)
    assert answer.status_code == 403 and answer.json() == refusal("192.168.1.1")
    assert backend.methods == ["GET"]


def test_on_a_message_api_it_filters_the_connection_s_request(shared_server):
    api = mock_api(path="/stream", count=1)
    api["flows"] = filtering(whitelistIps=["10.0.0.0/8"])
    shared_server.deploy_api(api)
    answer = requests.get(shared_server.gateway + "/stream", headers=JSON, timeout=10)
    assert answer.status_code == 403 and answer.json() == refusal("127.0.0.1")


@pytest.mark.parametrize(
    ("field", "entry"),
    [("whitelistIps", "10.0.0.300/8"), ("blacklistIps", "not an ip"), ("whitelistIps", "gravitee.io")],
)
def test_an_entry_that_is_not_an_ip_nor_a_cidr_is_refused_at_import_naming_the_field(shared_server, field, entry):
    before = shared_server.mgmt("GET", "/apis").json()["data"]
    api = proxy_api(["http://127.0.0.1:9"], path="/bad")
    api["flows"] = filtering(**{field: ["10.0.0.0/8", entry]})
    refused = shared_server.mgmt("POST", "/apis/_import/definition", json=api)
    assert refused.status_code == 400, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == f"flows[0].request[0].configuration.{field}"
    assert f"'{entry}' is not an IP address or CIDR (host names are not looked up)" in error["message"]
    assert shared_server.mgmt("GET", "/apis").json()["data"] == before


def test_the_policy_studio_form_refuses_a_bad_entry_beside_its_field_and_stores_good_ones(shared_server):
    server = shared_server
    api_id = server.import_api(proxy_api(["http://127.0.0.1:9"], path="/studio-ip"))
    browser = portal_login(server)
    base = f"/apis/{api_id}/policies/api/flows"
    assert post_form(browser, server, base).status_code == 302
    new_step = base + "/0/request/new?policy=ip-filtering"
    assert "Host names are refused: Gatehouse does not look them up." in browser.get(server.portal + new_step).text

    def flows():
        return server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()["api"]["flows"]

    before = flows()
    form = {"step.name": "Office only", "step.enabled": "on", "cfg.lookupIpVersion": "ALL"}
    refused = post_form(browser, server, new_step, dict(form, **{"cfg.whitelistIps": "10.0.0.0/8\nnot an ip"}))
    assert refused.status_code == 400
    beside = re.search(r'<p class="error" id="cfg.whitelistIps-error">([^<]*)</p>', refused.text)
    assert "&#39;not an ip&#39; is not an IP address or CIDR" in beside.group(1)
    assert flows() == before
    good = {"cfg.whitelistIps": "10.0.0.0/8\n2001:db8::/32", "cfg.matchAllFromXForwardedFor": "on"}
    assert post_form(browser, server, new_step, dict(form, **good)).status_code == 302
    [stored] = flows()[0]["request"]
    assert stored["policy"] == "ip-filtering"
    assert stored["configuration"]["whitelistIps"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert stored["configuration"]["matchAllFromXForwardedFor"] is True
