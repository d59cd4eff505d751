"""tcp-proxy APIs: TLS clients on the gateway's TCP port, routed by SNI host name to real local
TCP backends (plain and TLS), through a real `gatehouse serve`."""

import re
import socket
import ssl
import time

import pytest
from cryptography.hazmat.primitives import serialization

from gateway_runtime.endpoints.tcp_proxy import IdleTimeouts
from support.apis import tcp_api
from support.gatehouse import free_port
from support.http_backends import carried
from support.pki import make_ca, make_server_cert, pem
from support.portal import csrf_token, portal_login
from support.tcp_backends import connect, exchange


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA of the test, a server context with a certificate it signed for 127.0.0.1, and
    another CA that signed nothing here."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = make_ca("TCP test CA")
    key, cert = make_server_cert(ca_key, ca_cert)
    (folder / "server.pem").write_bytes(pem(cert))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return {"server_context": context, "ca": pem(ca_cert).decode(), "other_ca": pem(make_ca("Another CA")[1]).decode()}


def closed_within(sock, seconds):
    """True when the gateway closes this connection within `seconds` (the client sends nothing)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except OSError:  # reset, or the TLS session cut short
            return True
    return False


def test_sni_host_routes_to_the_api_that_lists_it(shared_server, tcp_backends):
    a, b = tcp_backends("A"), tcp_backends("B")
    shared_server.deploy_api(tcp_api(["a.example"], a.port))
    shared_server.deploy_api(tcp_api(["b.example", "b2.example"], b.port))
    with connect(shared_server, "a.example") as client:
        assert exchange(client, b"ping", b"A") == b"A:ping"
        assert exchange(client, b"again", b"A") == b"A:again"  # one connection, many exchanges
    with connect(shared_server, "b.example") as client:
        assert exchange(client, b"ping", b"B") == b"B:ping"
    with connect(shared_server, "B2.Example") as client:  # host names compare without case
        assert exchange(client, b"ping", b"B") == b"B:ping"


def test_unknown_sni_is_refused_with_unrecognized_name_and_logged_once(shared_server, tcp_backends):
    a = tcp_backends("A")
    shared_server.deploy_api(tcp_api(["a.example"], a.port))
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        connect(shared_server, "nobody.example")
    with connect(shared_server, "a.example") as client:  # the listener carries on
        assert exchange(client, b"ping", b"A") == b"A:ping"
    assert shared_server.log.count("no API listens for the SNI host name 'nobody.example'") == 1
    assert "Traceback" not in shared_server.log


def test_secured_target_is_verified_against_the_trust_store(shared_server, tcp_backends, pki):
    tls = tcp_backends("TLS", pki["server_context"])
    shared_server.deploy_api(
        tcp_api(
            ["trusted.example"],
            tls.port,
            secured=True,
            shared={"ssl": {"trustStore": {"type": "PEM", "content": pki["ca"]}}},
        )
    )
    with connect(shared_server, "trusted.example") as client:
        assert exchange(client, b"secret", b"TLS") == b"TLS:secret"

    shared_server.deploy_api(
        tcp_api(
            ["wrong-ca.example"],
            tls.port,
            secured=True,
            shared={"ssl": {"trustStore": {"type": "PEM", "content": pki["other_ca"]}}},
        )
    )
    with connect(shared_server, "wrong-ca.example") as client:
        assert closed_within(client, 5)
    assert re.search(
        rf"TLS verification of the backend 127\.0\.0\.1:{tls.port} failed: .*certificate.*; add the CA "
        "that signed its certificate to the trust store",
        shared_server.log,
    )


def test_round_robin_over_two_endpoints(shared_server, tcp_backends):
    a, b = tcp_backends("A"), tcp_backends("B")
    shared_server.deploy_api(tcp_api(["rr.example"], a.port, b.port))
    served = []
    for _ in range(4):
        with connect(shared_server, "rr.example") as client:
            served.append(exchange(client, b"who", b"A")[:1])
    assert served in ([b"A", b"B", b"A", b"B"], [b"B", b"A", b"B", b"A"])


def test_a_killed_backend_closes_the_client_connection_promptly(shared_server, tcp_backends):
    a = tcp_backends("A")
    shared_server.deploy_api(tcp_api(["a.example"], a.port))
    with connect(shared_server, "a.example") as client:
        assert exchange(client, b"ping", b"A") == b"A:ping"
        a.kill()
        assert closed_within(client, 1)


def test_an_unreachable_backend_is_retried_then_the_client_is_closed(shared_server, tcp_backends):
    a = tcp_backends("A")
    a.kill()  # its port now refuses connections
    shared_server.deploy_api(
        tcp_api(["down.example"], a.port, shared={"tcp": {"reconnectAttempts": 2, "reconnectInterval": 200}})
    )
    started = time.monotonic()
    with connect(shared_server, "down.example") as client:
        assert closed_within(client, 5)
    assert time.monotonic() - started >= 0.4  # two pauses of 200 ms between the three attempts
    assert (
        f"the backend 127.0.0.1:{a.port} cannot be reached (Connection refused) after 3 attempt(s)" in shared_server.log
    )


def test_the_connect_timeout_gives_up_on_a_backend_that_does_not_answer(shared_server):
    # A listener that never accepts, its queue filled: the kernel drops further SYNs, so connecting hangs.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as silent:
        port = silent.getsockname()[1]
        fillers = []
        for _ in range(16):  # until one connection hangs (Linux queues one at backlog 0)
            filler = socket.socket()
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                filler.close()
                break
            fillers.append(filler)
        else:
            pytest.fail("the accept queue never filled")
        shared_server.deploy_api(
            tcp_api(["slow.example"], port, shared={"tcp": {"connectTimeout": 300, "reconnectAttempts": 0}})
        )
        started = time.monotonic()
        with connect(shared_server, "slow.example") as client:
            assert closed_within(client, 3)
        assert time.monotonic() - started >= 0.3
        for filler in fillers:
            filler.close()
    assert f"the backend 127.0.0.1:{port} cannot be reached (timed out) after 1 attempt(s)" in shared_server.log


def test_the_idle_timeout_closes_a_silent_connection(shared_server, tcp_backends):
    a = tcp_backends("A")
    shared_server.deploy_api(tcp_api(["idle.example"], a.port, shared={"tcp": {"idleTimeout": 300}}))
    with connect(shared_server, "idle.example") as client:
        sent = time.monotonic()  # the gateway's last activity comes after this
        assert exchange(client, b"ping", b"A") == b"A:ping"
        assert closed_within(client, 2)
        assert time.monotonic() - sent >= 0.3


def test_each_idle_timeout_watches_its_own_direction():
    # Last data from the backend at 10 s, to it at 20 s.
    assert IdleTimeouts(0, 0, 0).deadline(10, 20) is None
    assert IdleTimeouts(5, 0, 0).deadline(10, 20) == 25  # either way
    assert IdleTimeouts(0, 5, 0).deadline(10, 20) == 15  # from the backend
    assert IdleTimeouts(0, 0, 5).deadline(10, 20) == 25  # to the backend
    assert IdleTimeouts(30, 8, 2).deadline(10, 20) == 18  # the first to pass


def test_a_redeploy_sends_new_connections_to_the_new_target(shared_server, tcp_backends):
    a, b = tcp_backends("A"), tcp_backends("B")
    api_id = shared_server.deploy_api(tcp_api(["switch.example"], a.port))
    with connect(shared_server, "switch.example") as before:
        assert exchange(before, b"1", b"A") == b"A:1"
        response = shared_server.mgmt(
            "PUT", f"/apis/{api_id}/_import/definition", json=tcp_api(["switch.example"], b.port)
        )
        assert response.status_code == 200, response.text
        shared_server.wait_serving(api_id, shared_server.deploy(api_id))
        with connect(shared_server, "switch.example") as after:
            assert exchange(after, b"2", b"B") == b"B:2"
        # An open connection stays with the revision it started on while that one drains.
        assert exchange(before, b"3", b"A") == b"A:3"
    assert shared_server.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
    deadline = time.monotonic() + 5
    while api_id in shared_server.runtime()["apis"] and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):  # a stopped API's host is free again
        connect(shared_server, "switch.example")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda d: d["endpointGroups"][0]["endpoints"][0]["configuration"]["target"].update(port=70000),
            "endpointGroups[0].endpoints[0].configuration.target.port",
            "Target port: must be at most 65535",
        ),
        (
            lambda d: d["endpointGroups"][0]["endpoints"][0]["configuration"]["target"].pop("host"),
            "endpointGroups[0].endpoints[0].configuration.target.host",
            "Target host is required",
        ),
        (lambda d: d["listeners"][0].update(hosts=[]), "listeners[0].hosts", "needs at least one host name"),
        (lambda d: d["listeners"][0].update(hosts=["not a host"]), "listeners[0].hosts[0]", "is not a host name"),
        (
            lambda d: d["listeners"][0]["entrypoints"][0].update(type="http-proxy"),
            "listeners[0].entrypoints[0].type",
            "The http-proxy entrypoint belongs on a http listener.",
        ),
        (
            lambda d: d["listeners"].append(
                {"type": "http", "paths": [{"path": "/x"}], "entrypoints": [{"type": "http-proxy"}]}
            ),
            "listeners[0].type",
            "can have no other listener",
        ),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(shared_server, change, field, message):
    definition = tcp_api(["bad.example"], 9)
    change(definition)
    response = shared_server.mgmt("POST", "/apis/_import/definition", json=definition)
    assert response.status_code == 400, response.text
    assert any(e["field"] == field and message in e["message"] for e in response.json()["errors"]), response.text


def test_a_host_another_api_listens_for_is_a_conflict(shared_server):
    shared_server.import_api(tcp_api(["taken.example"], 9, name="first"))
    response = shared_server.mgmt(
        "POST", "/apis/_import/definition", json=tcp_api(["other.example", "TAKEN.example"], 9)
    )
    assert response.status_code == 409
    assert response.json()["errors"] == [
        {
            "field": "listeners.hosts",
            "message": "The host taken.example is already used by the tcp listener of the API 'first'.",
        }
    ]


def test_failover_blocks_deploy_with_its_reason(shared_server):
    api_id = shared_server.import_api(tcp_api(["failover.example"], 9) | {"failover": {"enabled": True}})
    parts = shared_server.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["blockingParts"]
    assert parts == ["failover on a tcp listener's API (the endpoints' reconnect attempts retry connections)"]


def socks_api(host, backend_port, proxy_port, kind, **proxy):
    return tcp_api(
        [host],
        backend_port,
        shared={
            "tcp": {"reconnectAttempts": 0},
            "proxy": {"enabled": True, "type": kind, "host": "127.0.0.1", "port": proxy_port, **proxy},
        },
    )


def test_connections_go_through_a_socks5_or_socks4_proxy(shared_server, tcp_backends, outbound_proxies):
    ports, log = outbound_proxies
    a = tcp_backends("A")
    shared_server.deploy_api(
        socks_api("socks5.example", a.port, ports["SOCKS5"], "SOCKS5", username="gw", password="secret")
    )
    shared_server.deploy_api(socks_api("socks4.example", a.port, ports["SOCKS4"], "SOCKS4"))
    for host in ("socks5.example", "socks4.example"):
        before = log.read_text().count(f"-> 127.0.0.1:{a.port}")
        with connect(shared_server, host) as client:
            assert exchange(client, b"via " + host.encode(), b"A") == b"A:via " + host.encode()
        assert carried(log, f"127.0.0.1:{a.port}", times=before + 1), log.read_text()


def test_socks_proxy_failures_are_clear(shared_server, tcp_backends, outbound_proxies):
    ports, _ = outbound_proxies
    a = tcp_backends("A")
    down = free_port()
    cases = [
        (
            socks_api("wrong-password.example", a.port, ports["SOCKS5"], "SOCKS5", username="gw", password="nope"),
            # pproxy ends the handshake on a wrong password rather than answer with SOCKS5's auth failure
            f"the backend 127.0.0.1:{a.port} cannot be reached through the proxy 127.0.0.1:{ports['SOCKS5']} "
            "(Socket error: Connection closed unexpectedly) after 1 attempt(s)",
        ),
        (
            socks_api("proxy-down.example", a.port, down, "SOCKS5"),
            f"the backend 127.0.0.1:{a.port} cannot be reached through the proxy 127.0.0.1:{down} (the outbound "
            f"proxy 127.0.0.1:{down} cannot be reached: [Errno 111] Connection refused) after 1 attempt(s)",
        ),
    ]
    for definition, message in cases:
        shared_server.deploy_api(definition)
        with connect(shared_server, definition["listeners"][0]["hosts"][0]) as client:
            assert closed_within(client, 5)
        assert message in shared_server.log, shared_server.log


def test_the_system_proxy_carries_tcp_connections_if_it_is_a_socks_one(start_server, tcp_backends, outbound_proxies):
    ports, log = outbound_proxies
    a = tcp_backends("A")
    server = start_server(ALL_PROXY=f"socks5://gw:secret@127.0.0.1:{ports['SOCKS5']}", NO_PROXY="")
    api_id = server.deploy_api(
        tcp_api(["system.example"], a.port, shared={"proxy": {"enabled": True, "useSystemProxy": True}})
    )
    with connect(server, "system.example") as client:
        assert exchange(client, b"ping", b"A") == b"A:ping"
    assert carried(log, f"127.0.0.1:{a.port}")

    server.stop()
    http = start_server(ALL_PROXY=f"http://127.0.0.1:{ports['HTTP']}", NO_PROXY="")  # the same database
    http.wait_serving(api_id, 1)
    with connect(http, "system.example") as client:
        assert closed_within(client, 5)
    assert (
        f"the system proxy 127.0.0.1:{ports['HTTP']} is an HTTP proxy: TCP connections go only through a SOCKS4 "
        "or SOCKS5 proxy (set ALL_PROXY to one, e.g. socks5://host:1080)"
    ) in http.log


def test_the_portal_edits_tcp_proxy_endpoints_with_form_errors_naming_the_field(shared_server, tcp_backends):
    a, b = tcp_backends("A"), tcp_backends("B")
    api_id = shared_server.deploy_api(tcp_api(["portal.example"], a.port, name="TCP portal"))
    browser = portal_login(shared_server)
    page = browser.get(shared_server.portal + f"/apis/{api_id}")
    assert "<code>portal.example</code>" in page.text and "SNI hosts" in page.text
    endpoints = browser.get(shared_server.portal + f"/apis/{api_id}/endpoints")
    token = csrf_token(endpoints.text)
    group_id = re.search(r"/groups/(\d+)/endpoints/new", endpoints.text).group(1)
    new_group = browser.get(shared_server.portal + f"/apis/{api_id}/groups/new")
    assert re.findall(r'<option value="([^"]+)"', new_group.text.split('id="group_type"')[1].split("</select>")[0]) == [
        "tcp-proxy"
    ]  # a tcp listener's API takes tcp-proxy groups only
    # The create-API wizard makes HTTP listeners: it offers no tcp-proxy parts.
    wizard = browser.post(shared_server.portal + "/apis/new/_fields", data={"csrf_token": token, "type": "proxy"})
    assert 'name="entrypoint.http-proxy"' in wizard.text and "tcp-proxy" not in wizard.text

    new_endpoint = shared_server.portal + f"/apis/{api_id}/groups/{group_id}/endpoints/new"
    form = {
        "csrf_token": token,
        "name": "second",
        "weight": "1",
        "cfg.target.host": "127.0.0.1",
        "cfg.target.port": "70000",
        "shared.tcp.connectTimeout": "-1",
    }
    bad = browser.post(new_endpoint, data=form)
    assert bad.status_code == 400
    assert 'id="cfg.target.port-error">Target port: must be at most 65535' in bad.text
    assert 'id="shared.tcp.connectTimeout-error">Connect timeout (ms): must be at least 0' in bad.text
    assert 'name="shared.ssl.trustStore.type"' in bad.text  # the SSL section of the shared settings
    form.update({"cfg.target.port": str(b.port), "shared.tcp.connectTimeout": "500"})
    refused = browser.post(
        new_endpoint,
        data=form
        | {
            "shared.proxy.enabled": "on",
            "shared.ssl.trustStore.type": "PEM",
            "shared.ssl.trustStore.content": "not a certificate",
        },
    )
    assert refused.status_code == 400
    assert 'id="shared.proxy.host-error">Proxy host is required (or use the system proxy)' in refused.text
    assert 'id="shared.ssl.trustStore.content-error">Trust store: not PEM certificates' in refused.text
    added = browser.post(new_endpoint, data=form)
    assert "Endpoint second added. Redeploy to apply." in added.text
    endpoint = shared_server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][1]
    assert endpoint["configuration"] == {"target": {"host": "127.0.0.1", "port": b.port, "secured": False}}
    assert endpoint["sharedConfigurationOverride"]["tcp"]["connectTimeout"] == 500

    browser.post(shared_server.portal + f"/apis/{api_id}/deploy", data={"csrf_token": token})
    shared_server.wait_serving(api_id, 2)
    served = set()
    for _ in range(2):
        with connect(shared_server, "portal.example") as client:
            served.add(exchange(client, b"hi", b"A")[:1])
    assert served == {b"A", b"B"}
