"""HTTP proxy APIs against real local backends (stdlib HTTP servers started by the tests)."""

import base64
import ssl
import threading
import time
from collections import Counter

import jks
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from support import h2_backend
from support.apis import proxy_api, tls_group
from support.gatehouse import free_port
from support.http_backends import carried, start_backend, url
from support.pki import make_ca, make_client_cert, pem, server_cert_files
from support.portal import EndpointsPage, connector_fields, csrf_token, portal_login


@pytest.fixture
def server(shared_server):
    """One server for the module: each test deploys APIs of its own, removed after it."""
    return shared_server


def test_path_query_headers_and_body_are_forwarded(server, http_backends):
    server.deploy_api(proxy_api([url(http_backends[0]) + "/api/v1"]))
    got = requests.post(
        server.gateway + "/shop/orders/7?expand=lines&x=1",
        data=b"x" * 1000,
        headers={
            "X-Custom": "kept",
            "Proxy-Authorization": "Basic eDp5",
            "Te": "trailers",
            "X-Forwarded-For": "10.9.9.9",
        },
        timeout=10,
    )
    assert got.status_code == 200 and got.headers["X-Backend"] == "b0"
    echo = got.json()
    assert echo["method"] == "POST" and echo["path"] == "/api/v1/orders/7?expand=lines&x=1" and echo["size"] == 1000
    assert echo["headers"]["X-Custom"] == "kept"
    assert echo["headers"]["X-Forwarded-For"] == "10.9.9.9, 127.0.0.1"
    assert echo["headers"]["X-Forwarded-Proto"] == "http"
    assert echo["headers"]["X-Forwarded-Host"] == server.gateway.split("//")[1]
    assert echo["headers"]["Host"] == f"127.0.0.1:{http_backends[0].server_address[1]}"
    assert "Proxy-Authorization" not in echo["headers"] and "Te" not in echo["headers"]  # hop-by-hop
    root = requests.get(server.gateway + "/shop", timeout=10).json()
    assert root["path"] == "/api/v1"


def test_round_robin_and_weighted_round_robin_are_exact_over_whole_cycles(server, http_backends):
    targets = [url(b) for b in http_backends]
    server.deploy_api(proxy_api(targets, path="/rr"))
    server.deploy_api(proxy_api(targets, path="/wrr", lb="weighted-round-robin", weights=[1, 2, 3]))
    with requests.Session() as s:
        rr = Counter(s.get(server.gateway + "/rr", timeout=10).headers["X-Backend"] for _ in range(30))
        wrr = Counter(s.get(server.gateway + "/wrr", timeout=10).headers["X-Backend"] for _ in range(60))
    assert rr == {"b0": 10, "b1": 10, "b2": 10}
    assert wrr == {"b0": 10, "b1": 20, "b2": 30}


@pytest.mark.parametrize("lb, weights", [("random", [1, 1, 1]), ("weighted-random", [1, 2, 3])])
def test_random_balancers_pass_a_chi_square_test(server, http_backends, lb, weights):
    server.deploy_api(proxy_api([url(b) for b in http_backends], path="/rand", lb=lb, weights=weights))
    with requests.Session() as s:
        seen = Counter(s.get(server.gateway + "/rand", timeout=10).headers["X-Backend"] for _ in range(1000))
    expected = [1000 * w / sum(weights) for w in weights]
    chi2 = sum((seen[f"b{i}"] - e) ** 2 / e for i, e in enumerate(expected))
    # 2 degrees of freedom, p = 1e-6 (-2 ln p): a broken balancer (uniform instead of 1:2:3) scores ~220 here;
    # at p = 0.001 a correct one failed one run in a thousand, as it did once.
    assert chi2 < 27.631, (seen, chi2)


def test_killed_backend_is_502_and_slow_backend_is_504(server, http_backends):
    dead = f"http://127.0.0.1:{free_port()}"
    server.deploy_api(proxy_api([dead], path="/dead"))
    server.deploy_api(proxy_api([url(http_backends[0])], path="/slowpoke", http={"readTimeout": 1000}))
    refused = requests.get(server.gateway + "/dead/x", timeout=10)
    assert refused.status_code == 502 and refused.json() == {"message": f"the backend {dead[7:]} cannot be reached"}
    started = time.monotonic()
    slow = requests.get(server.gateway + "/slowpoke/slow", timeout=10)
    assert slow.status_code == 504 and "did not answer in time" in slow.json()["message"]
    assert time.monotonic() - started < 2.5


def test_sse_backend_events_reach_the_client_one_by_one(server, http_backends):
    server.deploy_api(proxy_api([url(http_backends[0])], path="/events"))
    arrivals = []
    with requests.get(server.gateway + "/events/sse", stream=True, timeout=10) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] > 0.3 and arrivals[2] - arrivals[1] > 0.3  # not held back until the end


def test_a_200_mb_upload_streams_through_without_growing_the_gateway(start_server, http_backends):
    server = start_server()  # its own: the memory measured is this upload's alone
    server.deploy_api(proxy_api([url(http_backends[0])], path="/upload"))
    pid = server.runtime()["pid"]

    def rss_mb():
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    before = rss_mb()
    block = b"u" * (1 << 20)
    peak = [before]

    def body():
        for i in range(200):
            if i % 20 == 0:
                peak.append(rss_mb())
            yield block

    got = requests.put(server.gateway + "/upload/big", data=body(), timeout=120)  # chunked upload
    assert got.status_code == 200 and got.json()["size"] == 200 * (1 << 20)
    assert max(peak) - before < 50, (before, peak)


@pytest.fixture
def tls_backend(tmp_path):
    """A backend over TLS with a certificate for 127.0.0.1 and localhost, from a CA of the test."""
    ca_key, ca_cert = make_ca("Proxy test CA")
    server = start_backend("tls", start=False, host="0.0.0.0")  # reached as 127.0.0.1 and as 127.0.0.2
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*server_cert_files(tmp_path, ca_key, ca_cert))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, pem(ca_cert).decode()
    server.shutdown()
    server.server_close()


def test_https_backends_with_a_trust_store_trust_all_and_host_name_checks(server, tls_backend):
    backend, ca = tls_backend
    port = backend.server_address[1]
    server.deploy_api(
        proxy_api([f"https://127.0.0.1:{port}"], path="/trusted", http={})
        | {"endpointGroups": [tls_group(port, {"trustStore": {"type": "PEM", "content": ca}})]}
    )
    assert requests.get(server.gateway + "/trusted/x", timeout=10).headers["X-Backend"] == "tls"

    server.deploy_api(proxy_api([], path="/untrusted") | {"endpointGroups": [tls_group(port, {})]})
    refused = requests.get(server.gateway + "/untrusted/x", timeout=10)
    assert refused.status_code == 502 and "is not signed by a CA in the trust store" in refused.json()["message"]

    server.deploy_api(proxy_api([], path="/all") | {"endpointGroups": [tls_group(port, {"trustAll": True})]})
    assert requests.get(server.gateway + "/all/x", timeout=10).status_code == 200

    # By a name its certificate does not hold: refused, unless host names are not verified.
    server.deploy_api(
        proxy_api([], path="/byname")
        | {"endpointGroups": [tls_group(port, {"trustStore": {"type": "PEM", "content": ca}}, host="127.0.0.2")]}
    )
    mismatch = requests.get(server.gateway + "/byname/x", timeout=10)
    assert mismatch.status_code == 502 and "mismatch" in mismatch.json()["message"]
    server.deploy_api(
        proxy_api([], path="/noverify")
        | {
            "endpointGroups": [
                tls_group(
                    port, {"trustStore": {"type": "PEM", "content": ca}, "hostnameVerifier": False}, host="127.0.0.2"
                )
            ]
        }
    )
    assert requests.get(server.gateway + "/noverify/x", timeout=10).status_code == 200


def health_checked(assertion, threshold):
    """An endpoint group's services: a health check of /health every second with this assertion,
    `threshold` checks in a row to leave or come back."""
    configuration = {"schedule": "* * * * * *", "method": "GET", "target": "/health", "overrideEndpointPath": True}
    return {
        "healthCheck": {
            "enabled": True,
            "type": "http-health-check",
            "configuration": {
                **configuration,
                "assertion": assertion,
                "successThreshold": threshold,
                "failureThreshold": threshold,
            },
        }
    }


def test_a_failing_endpoint_leaves_rotation_within_its_thresholds_and_comes_back(server, http_backends):
    healthy, flaky = http_backends[0], http_backends[1]
    definition = proxy_api([url(healthy), url(flaky)], path="/checked")
    definition["endpointGroups"][0]["services"] = health_checked("{#response.status == 200}", 2)
    api_id = server.deploy_api(definition)
    assert server.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["blockingParts"] == []

    def served(n=12):
        with requests.Session() as s:
            return Counter(s.get(server.gateway + "/checked", timeout=10).headers["X-Backend"] for _ in range(n))

    assert served() == {"b0": 6, "b1": 6}
    flaky.health_status = 500  # its /health starts failing: out after 2 failed checks, one a second
    failing_since = time.monotonic()
    while served(4) != {"b0": 4}:
        assert time.monotonic() - failing_since < 4, "still in rotation after 2 failed checks"
        time.sleep(0.2)
    flaky.health_status = 200
    back_since = time.monotonic()
    while served(4) != {"b0": 2, "b1": 2}:
        assert time.monotonic() - back_since < 4, "not back after 2 passed checks"
        time.sleep(0.2)

    healthy.health_status = flaky.health_status = 503
    deadline = time.monotonic() + 4
    while (response := requests.get(server.gateway + "/checked", timeout=10)).status_code != 503:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert response.json() == {"message": "no endpoint of this API is up (all fail their health checks)"}


def test_a_health_check_assertion_on_the_answer_s_content_takes_an_endpoint_out_and_back(server, http_backends):
    healthy, flaky = http_backends[0], http_backends[1]
    healthy.health_body = flaky.health_body = b'{"status": "UP"}'
    definition = proxy_api([url(healthy), url(flaky)], path="/asserted")
    definition["endpointGroups"][0]["services"] = health_checked(
        "{#response.status == 200 && #jsonPath(#response.content, '$.status') == 'UP'}", 1
    )
    try:
        api_id = server.deploy_api(definition)
        assert server.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["blockingParts"] == []

        def served(n=4):
            with requests.Session() as s:
                return Counter(s.get(server.gateway + "/asserted", timeout=10).headers["X-Backend"] for _ in range(n))

        assert served() == {"b0": 2, "b1": 2}
        flaky.health_body = b'{"status": "DOWN"}'  # still 200: only the assertion on the content sees it
        since = time.monotonic()
        while served() != {"b0": 4}:
            assert time.monotonic() - since < 4, "still in rotation after a failed check"
            time.sleep(0.2)
        flaky.health_body = b'{"status": "UP"}'
        since = time.monotonic()
        while served() != {"b0": 2, "b1": 2}:
            assert time.monotonic() - since < 4, "not back after a passed check"
            time.sleep(0.2)
    finally:
        healthy.health_body = flaky.health_body = b"{}"


def test_a_health_check_assertion_that_cannot_be_read_blocks_deploy_naming_the_position(server, http_backends):
    definition = proxy_api([url(http_backends[0])], path="/unreadable")
    definition["endpointGroups"][0]["services"] = health_checked("{#response.status == }", 1)
    imported = server.mgmt("POST", "/apis/_import/definition", json=definition)
    assert imported.status_code == 201, imported.text
    assert imported.json()["gatehouse"]["blockingParts"] == [
        "group backends: health check assertion '{#response.status == }': "
        "Expression error at position 21: unexpected end of expression"
    ]


def client_key_stores(ca_key, ca_cert):
    """The same kind of client certificate as a PEM pair, a PKCS12 store and a JKS store with two
    keys (the alias picks the one the backend trusts)."""
    key, cert = make_client_cert(ca_key, ca_cert)
    other_key, other_cert = make_client_cert(*make_ca("Another CA"), name="stranger")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    p12 = pkcs12.serialize_key_and_certificates(
        b"client", key, cert, [ca_cert], serialization.BestAvailableEncryption(b"p12-secret")
    )

    def jks_entry(alias, k, c):
        der_key = k.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return jks.PrivateKeyEntry.new(alias, [c.public_bytes(serialization.Encoding.DER)], der_key, "pkcs8")

    store = jks.KeyStore.new("jks", [jks_entry("a-stranger", other_key, other_cert), jks_entry("client", key, cert)])
    return {
        "PEM": {"type": "PEM", "certContent": pem(cert).decode(), "keyContent": key_pem},
        "PKCS12": {"type": "PKCS12", "content": base64.b64encode(p12).decode(), "password": "p12-secret"},
        "JKS": {
            "type": "JKS",
            "content": base64.b64encode(store.saves("jks-secret")).decode(),
            "password": "jks-secret",
            "alias": "client",
        },
    }


def test_client_certificates_to_backends_from_pem_pkcs12_and_jks_stores(server, mtls_backend):
    backend, ca_key, ca_cert = mtls_backend
    port = backend.server_address[1]
    trust = {"type": "PEM", "content": pem(ca_cert).decode()}
    server.deploy_api(proxy_api([], path="/anonymous") | {"endpointGroups": [tls_group(port, {"trustStore": trust})]})
    refused = requests.get(server.gateway + "/anonymous/x", timeout=10)
    assert refused.status_code == 502, refused.text
    assert refused.json()["message"] == (
        f"the TLS handshake with the backend 127.0.0.1:{port} failed: if the "
        "backend asks for a client certificate, give one in the endpoint's SSL "
        "key store"
    )
    for kind, key_store in client_key_stores(ca_key, ca_cert).items():
        path = f"/with-{kind.lower()}"
        server.deploy_api(
            proxy_api([], path=path)
            | {"endpointGroups": [tls_group(port, {"trustStore": trust, "keyStore": key_store})]}
        )
        got = requests.get(server.gateway + path + "/x", timeout=10)
        assert got.status_code == 200, (kind, got.text)
        assert got.headers["X-Backend"] == "mtls"


def test_a_wrong_store_password_or_a_damaged_store_is_a_form_error(mtls_backend):
    from gateway_runtime.endpoints.http_proxy import SHARED

    _, ca_key, ca_cert = mtls_backend
    stores = client_key_stores(ca_key, ca_cert)
    cases = [
        ({**stores["PKCS12"], "password": "wrong"}, "ssl.keyStore.password", "password"),
        ({**stores["JKS"], "content": stores["JKS"]["content"][:200]}, "ssl.keyStore.content", "damaged"),
        ({**stores["JKS"], "alias": "nobody"}, "ssl.keyStore.alias", "no private key named 'nobody'"),
        ({**stores["PEM"], "certContent": "not a certificate"}, "ssl.keyStore.certContent", "PEM"),
    ]
    for key_store, field, words in cases:
        _, errors = SHARED.validate({"ssl": {"keyStore": key_store}})
        assert field in errors, (field, errors)
        assert words in errors[field] and errors[field].startswith("Key store: "), errors[field]


def test_requests_go_through_an_outbound_http_or_socks_proxy(server, http_backends, tls_backend, outbound_proxies):
    ports, log = outbound_proxies
    address = f"127.0.0.1:{http_backends[0].server_address[1]}"
    credentials = {"username": "gw", "password": "secret"}
    for kind, extra in (("HTTP", credentials), ("SOCKS5", credentials), ("SOCKS4", {})):
        path = f"/via-{kind.lower()}"
        server.deploy_api(
            proxy_api([url(http_backends[0])], path=path)
            | {
                "endpointGroups": [
                    {
                        **proxy_api([url(http_backends[0])])["endpointGroups"][0],
                        "sharedConfiguration": {
                            "proxy": {"enabled": True, "type": kind, "host": "127.0.0.1", "port": ports[kind], **extra}
                        },
                    }
                ]
            }
        )
        got = requests.get(server.gateway + path + "/x", timeout=10)
        assert got.status_code == 200 and got.headers["X-Backend"] == "b0", (kind, got.text)
    assert log.read_text().count(f"-> {address}") >= 3 or carried(log, address)

    # https through the HTTP proxy's CONNECT tunnel, the backend verified against the test's CA
    tls, ca = tls_backend
    tls_port = tls.server_address[1]
    server.deploy_api(
        proxy_api([], path="/tunnel")
        | {
            "endpointGroups": [
                {
                    **tls_group(tls_port, {"trustStore": {"type": "PEM", "content": ca}}),
                    "sharedConfiguration": {
                        "ssl": {"trustStore": {"type": "PEM", "content": ca}},
                        "proxy": {
                            "enabled": True,
                            "type": "HTTP",
                            "host": "127.0.0.1",
                            "port": ports["HTTP"],
                            **credentials,
                        },
                    },
                }
            ]
        }
    )
    tunnelled = requests.get(server.gateway + "/tunnel/x", timeout=10)
    assert tunnelled.status_code == 200 and tunnelled.headers["X-Backend"] == "tls", tunnelled.text
    assert carried(log, f"127.0.0.1:{tls_port}")


def test_outbound_proxy_failures_are_clear(server, http_backends, outbound_proxies):
    ports, _ = outbound_proxies
    target = url(http_backends[0])
    down = free_port()
    cases = [
        (
            {"type": "HTTP", "port": ports["HTTP"], "username": "gw", "password": "wrong"},
            f"the outbound proxy 127.0.0.1:{ports['HTTP']} refused the gateway's credentials (407): check the proxy "
            "user name and password",
        ),
        (
            {"type": "HTTP", "port": down},
            f"the outbound proxy 127.0.0.1:{down} did not take the request to {target[7:]}: "
            "[Errno 111] Connection refused",
        ),
        (
            {"type": "SOCKS5", "port": down},
            f"the backend {target[7:]} cannot be reached through the proxy 127.0.0.1:{down}: "
            "[Errno 111] Connection refused",
        ),
    ]
    for i, (proxy, message) in enumerate(cases):
        path = f"/failing-{i}"
        server.deploy_api(
            proxy_api([target], path=path)
            | {
                "endpointGroups": [
                    {
                        **proxy_api([target])["endpointGroups"][0],
                        "sharedConfiguration": {"proxy": {"enabled": True, "host": "127.0.0.1", **proxy}},
                    }
                ]
            }
        )
        got = requests.get(server.gateway + path, timeout=10)
        assert (got.status_code, got.json()) == (502, {"message": message})


def test_the_system_proxy_is_the_one_the_environment_names(start_server, http_backends, outbound_proxies):
    ports, log = outbound_proxies
    gateway = start_server(HTTP_PROXY=f"http://gw:secret@127.0.0.1:{ports['HTTP']}", NO_PROXY="")
    address = f"127.0.0.1:{http_backends[1].server_address[1]}"
    gateway.deploy_api(
        proxy_api([url(http_backends[1])], path="/system")
        | {
            "endpointGroups": [
                {
                    **proxy_api([url(http_backends[1])])["endpointGroups"][0],
                    "sharedConfiguration": {"proxy": {"enabled": True, "useSystemProxy": True}},
                }
            ]
        }
    )
    got = requests.get(gateway.gateway + "/system", timeout=10)
    assert got.status_code == 200 and got.headers["X-Backend"] == "b1", got.text
    assert carried(log, address)


def test_http2_to_backends_in_clear_text_and_over_tls(server, tmp_path):
    ca_key, ca_cert = make_ca("HTTP/2 test CA")
    with (
        h2_backend.serving(tmp_path) as clear,
        h2_backend.serving(tmp_path, *server_cert_files(tmp_path, ca_key, ca_cert)) as secured,
    ):
        server.deploy_api(proxy_api([clear + "/base"], path="/h2c", http={"version": "HTTP_2"}))
        sized = requests.post(server.gateway + "/h2c/orders?x=1", data=b"order-1", timeout=10)
        assert sized.status_code == 200, sized.text
        assert sized.json() == {
            "httpVersion": "2",
            "method": "POST",
            "path": "/base/orders",
            "query": "x=1",
            "body": "order-1",
        }
        streamed = requests.post(server.gateway + "/h2c/more", data=iter([b"part-1;", b"part-2"]), timeout=10)
        assert streamed.json()["body"] == "part-1;part-2" and streamed.json()["httpVersion"] == "2"

        server.deploy_api(
            proxy_api([], path="/h2")
            | {
                "endpointGroups": [
                    {
                        **tls_group(
                            int(secured.rsplit(":", 1)[1]),
                            {"trustStore": {"type": "PEM", "content": pem(ca_cert).decode()}},
                        ),
                        "sharedConfiguration": {
                            "http": {"version": "HTTP_2"},
                            "ssl": {"trustStore": {"type": "PEM", "content": pem(ca_cert).decode()}},
                        },
                    }
                ]
            }
        )
        over_tls = requests.get(server.gateway + "/h2/x", timeout=10)
        assert over_tls.status_code == 200 and over_tls.json()["httpVersion"] == "2", over_tls.text
    gone = requests.get(server.gateway + "/h2c/after", timeout=10)
    assert gone.status_code == 502 and "cannot be reached" in gone.json()["message"]


def test_failover_is_configured_in_the_portal_and_retries_on_the_next_endpoint(server, http_backends):
    dead = f"http://127.0.0.1:{free_port()}"
    api_id = server.import_api(proxy_api([dead, url(http_backends[0])], path="/fo"))
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/failover")
    assert page.status_code == 200 and 'name="failover.enabled"' in page.text
    token = csrf_token(page.text)
    assert 'name="failover.maxRetries"' not in page.text  # its section opens with the toggle (HTMX)
    section = browser.post(
        server.portal + f"/apis/{api_id}/failover/_fields", data={"csrf_token": token, "failover.enabled": "on"}
    )
    assert 'id="failover-fields"' in section.text and 'name="failover.maxRetries"' in section.text
    # the failure condition is checked as it is typed: the field posts itself, the answer goes beside it
    assert (
        'hx-post="/expression-check"' in section.text
        and 'hx-vals=\'{"field": "failover.failureCondition"}\'' in section.text
    )

    def checked(text):
        answer = browser.post(
            server.portal + "/expression-check",
            data={"csrf_token": token, "field": "failover.failureCondition", "failover.failureCondition": text},
        )
        assert answer.status_code == 200, answer.text
        return answer.text.strip()

    assert checked("{#response.status >= }") == (
        '<span class="error">Expression error at position 21: unexpected end of expression</span>'
    )
    assert checked("{#response.status >= 500}") == '<span class="expression-ok">The expression reads.</span>'
    assert checked("<script>{#x.(}").startswith('<span class="error">Expression error at position ')
    assert "<script>" not in checked("<script>{#x.(}")
    assert checked("") == ""
    bad = browser.post(
        server.portal + f"/apis/{api_id}/failover",
        data={"csrf_token": token, "failover.enabled": "on", "failover.maxRetries": "-1"},
    )
    assert bad.status_code == 400 and "Max retries: must be at least 0" in bad.text
    unknown = browser.post(
        server.portal + f"/apis/{api_id}/failover",
        data={
            "csrf_token": token,
            "failover.enabled": "on",
            "failover.failureCondition": "{#response.status >= }",
        },
    )
    assert unknown.status_code == 400
    assert "Failure condition: Expression error at position 21: unexpected end of expression" in unknown.text
    assert "failover" not in server.mgmt("GET", f"/apis/{api_id}").json()
    saved = browser.post(
        server.portal + f"/apis/{api_id}/failover",
        data={
            "csrf_token": token,
            "failover.enabled": "on",
            "failover.maxRetries": "1",
            "failover.slowCallDuration": "2000",
            "failover.openStateDuration": "10000",
            "failover.maxFailures": "5",
            "failover.failureCondition": "{#response.status >= 500}",
        },
    )
    assert saved.status_code == 200 and "Failover saved. Redeploy to apply." in saved.text
    assert "On: up to 1 retries" in saved.text
    assert server.mgmt("GET", f"/apis/{api_id}").json()["failover"] == {
        "enabled": True,
        "maxRetries": 1,
        "slowCallDuration": 2000,
        "openStateDuration": 10000,
        "maxFailures": 5,
        "perSubscription": False,
        "forceNextEndpointOnFailure": False,
        "failureCondition": "{#response.status >= 500}",
    }
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    answers = [requests.get(server.gateway + "/fo/x", timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4  # the dead endpoint's turns went to the next one
    assert {a.headers["X-Backend"] for a in answers} == {"b0"}


def test_the_endpoint_form_opens_each_http_proxy_section_with_its_toggle(server, http_backends):
    api_id = server.import_api(
        proxy_api([url(http_backends[0])], path="/form")
        | {
            "endpointGroups": [
                {
                    **proxy_api([url(http_backends[0])])["endpointGroups"][0],
                    "endpoints": [
                        {
                            "name": "e0",
                            "type": "http-proxy",
                            "inheritConfiguration": False,
                            "configuration": {"target": url(http_backends[0])},
                            "sharedConfigurationOverride": {},
                        }
                    ],
                }
            ]
        }
    )
    portal = EndpointsPage(server, api_id)
    shown = connector_fields(
        portal.browser.get(server.portal + f"/apis/{api_id}/endpoints/{portal.endpoint_id}/edit").text
    )
    always = {
        "cfg.target",
        "shared.http.version",
        "shared.http.connectTimeout",
        "shared.http.readTimeout",
        "shared.http.idleTimeout",
        "shared.http.keepAlive",
        "shared.http.keepAliveTimeout",
        "shared.http.maxConcurrentConnections",
        "shared.http.followRedirects",
        "shared.http.propagateClientHost",
        "shared.http.useCompression",
        "shared.headers",
        "shared.proxy.enabled",
        "shared.ssl.hostnameVerifier",
        "shared.ssl.trustAll",
        "shared.ssl.trustStore.type",
        "shared.ssl.keyStore.type",
    }
    assert always <= shown
    assert not {
        f for f in shown if f.startswith(("shared.proxy.", "shared.ssl.keyStore.", "shared.ssl.trustStore."))
    } - {"shared.proxy.enabled", "shared.ssl.keyStore.type", "shared.ssl.trustStore.type"}

    def section(**form):
        return (
            connector_fields(
                portal.browser.post(
                    portal.refresh, data={"csrf_token": portal.token, "cfg.target": url(http_backends[0]), **form}
                ).text
            )
            - always
        )

    assert section(**{"shared.http.version": "HTTP_2"}) == {"shared.http.clearTextUpgrade"}
    assert section(**{"shared.proxy.enabled": "on"}) == {
        "shared.proxy.useSystemProxy",
        "shared.proxy.type",
        "shared.proxy.host",
        "shared.proxy.port",
        "shared.proxy.username",
        "shared.proxy.password",
    }
    # Each store: its type, then "with location" or "with certificates" / "with key", then that pair's fields.
    trust, key = "shared.ssl.trustStore.", "shared.ssl.keyStore."
    assert section(**{trust + "type": "PEM"}) == {trust + "with", trust + "path"}
    assert section(**{trust + "type": "PEM", trust + "with": "certificates"}) == {trust + "with", trust + "content"}
    assert section(**{trust + "type": "JKS"}) == {trust + "with", trust + "path", trust + "password"}
    assert section(**{key + "type": "PEM"}) == {key + "with", key + "certPath", key + "keyPath"}
    assert section(**{key + "type": "PEM", key + "with": "key"}) == {
        key + "with",
        key + "certContent",
        key + "keyContent",
    }
    assert section(**{key + "type": "PKCS12", key + "with": "key"}) == {
        key + "with",
        key + "content",
        key + "password",
        key + "alias",
        key + "keyPassword",
    }
    assert section(**{key + "type": "PKCS12"}) == {
        key + "with",
        key + "path",
        key + "password",
        key + "alias",
        key + "keyPassword",
    }
    # Saving an outbound proxy without its host is refused, naming the field; nothing is saved.
    refused = portal.browser.post(
        server.portal + f"/apis/{api_id}/endpoints/{portal.endpoint_id}/edit",
        data={
            "csrf_token": portal.token,
            "name": "e0",
            "weight": "1",
            "cfg.target": url(http_backends[0]),
            "shared.proxy.enabled": "on",
            "shared.proxy.type": "SOCKS5",
        },
    )
    assert refused.status_code == 400 and "Proxy host is required (or use the system proxy)" in refused.text
    stored = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][0]
    assert "proxy" not in (stored.get("sharedConfigurationOverride") or {})
