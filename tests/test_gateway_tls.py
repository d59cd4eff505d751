"""TLS on the gateway port (issue 17): HTTPS and WSS on a real `gatehouse serve`, verified against a
test CA; client certificates required; a renewed certificate taken without a restart; wrong
settings stopping the start; plain HTTP and silent clients on the TLS port."""

import http.client
import json
import os
import signal
import socket
import ssl
import time

import pytest
import requests
import websocket

from support.apis import http_get, mock_api
from support.gatehouse import environment, launch, refused_start, serving_pids, until
from support.http_backends import start_backend
from support.pki import client_cert_files, make_ca, pem, server_cert_files
from support.plans import plan, proxy_api

HEADER_TIMEOUT = 2
MARGIN = 3  # a loaded machine's scheduling, on top of a timeout
MOCK = mock_api("/demo", content="hello", interval=50, entrypoints=[http_get("auto", 2, 2000), {"type": "websocket"}])


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """(key, certificate, folder): the test CA, its certificate in folder/ca.pem."""
    folder = tmp_path_factory.mktemp("pki")
    key, cert = make_ca("Gatehouse gateway test CA")
    (folder / "ca.pem").write_bytes(pem(cert))
    return key, cert, folder


@pytest.fixture(scope="module")
def backend():
    server = start_backend("tls-backend")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gatehouse(tmp_path_factory, ca, backend):
    """HTTPS on the gateway port, no client certificates; a Mock API and an http-proxy API."""
    cert, key = server_cert_files(tmp_path_factory.mktemp("tls-files"), ca[0], ca[1])  # its own: watched
    server = launch(
        tmp_path_factory.mktemp("tls"),
        GATEHOUSE_GATEWAY_TLS_CERT=str(cert),
        GATEHOUSE_GATEWAY_TLS_KEY=str(key),
        GATEHOUSE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
    )
    server.deploy_api(MOCK)
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    server.deploy_api(proxy_api("/up", url + "/base", [plan("open", "KEY_LESS")]))
    yield server
    server.stop()


def client_context(ca, cert=None, key=None):
    context = ssl.create_default_context(cafile=str(ca[2] / "ca.pem"))
    context.set_alpn_protocols(["h2", "http/1.1"])
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def https_get(server, context, path="/demo"):
    """(status, body, (ALPN protocol, TLS version))"""
    connection = http.client.HTTPSConnection("127.0.0.1", server.gateway_port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        tls = connection.sock.selected_alpn_protocol(), connection.sock.version()
        return response.status, response.read(), tls
    finally:
        connection.close()


def test_https_get_is_served_verified_against_the_ca_with_alpn_http_1_1(gatehouse, ca):
    status, body, tls = https_get(gatehouse, client_context(ca))
    assert status == 200, body
    assert tls[0] == "http/1.1"
    assert tls[1] in ("TLSv1.2", "TLSv1.3")
    assert "Gatehouse gateway: https://" in gatehouse.log


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_a_tls_1_2_client_is_served_and_a_tls_1_1_one_refused(gatehouse, ca):
    twelve = client_context(ca)
    twelve.maximum_version = ssl.TLSVersion.TLSv1_2
    status, _, tls = https_get(gatehouse, twelve)
    assert status == 200 and tls[1] == "TLSv1.2"
    eleven = client_context(ca)
    eleven.minimum_version = eleven.maximum_version = ssl.TLSVersion.TLSv1_1
    eleven.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client could speak TLS 1.1: the gateway refuses it
    with pytest.raises(ssl.SSLError) as refused:
        https_get(gatehouse, eleven)
    assert "PROTOCOL_VERSION" in str(refused.value) or "UNSUPPORTED_PROTOCOL" in str(refused.value)


def test_the_backend_is_told_the_client_came_over_https(gatehouse, ca, backend):
    status, body, _ = https_get(gatehouse, client_context(ca), "/up/x")
    assert status == 200, body
    assert json.loads(body)["path"] == "/base/x"
    assert json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"


def test_a_websocket_over_tls_receives_and_sends(gatehouse, ca):
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{gatehouse.gateway_port}/demo", timeout=5, sslopt={"ca_certs": str(ca[2] / "ca.pem")}
    )
    try:
        assert [ws.recv() for _ in range(3)] == ["hello"] * 3
        ws.send("x" * 100_000)  # many TLS records: accepted by the mock and dropped
        assert ws.recv() == "hello"
    finally:
        ws.close()


def test_plain_http_on_the_tls_port_is_answered_400_without_a_traceback(gatehouse):
    response = requests.get(f"http://127.0.0.1:{gatehouse.gateway_port}/demo", timeout=5)
    assert response.status_code == 400
    assert response.text.strip() == "This port speaks HTTPS, not HTTP."
    assert "Traceback" not in gatehouse.log


def test_a_client_sending_nothing_holds_neither_the_port_nor_its_connection_for_long(gatehouse, ca):
    with socket.create_connection(("127.0.0.1", gatehouse.gateway_port), timeout=HEADER_TIMEOUT + MARGIN) as silent:
        assert https_get(gatehouse, client_context(ca))[0] == 200  # served meanwhile
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by the header timeout, no handshake done
        assert time.monotonic() - started < HEADER_TIMEOUT + MARGIN
    with socket.create_connection(("127.0.0.1", gatehouse.gateway_port), timeout=5) as wrong:
        wrong.sendall(b"\x16\x03\x01\x00\x05hello")  # a TLS record that is no ClientHello
        assert wrong.recv(4096)[:1] in (b"\x15", b"")  # an alert, or the end
    assert "Traceback" not in gatehouse.log


@pytest.fixture(scope="module")
def requiring(tmp_path_factory, ca):
    """Client certificates from the test CA required; debug logging, which names each client's subject."""
    cert, key = server_cert_files(tmp_path_factory.mktemp("mtls-files"), ca[0], ca[1])
    server = launch(
        tmp_path_factory.mktemp("mtls"),
        GATEHOUSE_GATEWAY_TLS_CERT=str(cert),
        GATEHOUSE_GATEWAY_TLS_KEY=str(key),
        GATEHOUSE_GATEWAY_TLS_CLIENT_AUTH="require",
        GATEHOUSE_GATEWAY_TLS_CLIENT_CA=str(ca[2] / "ca.pem"),
        GATEHOUSE_LOG_LEVEL="DEBUG",
    )
    server.deploy_api(MOCK)
    yield server
    server.stop()


def test_require_refuses_a_client_without_a_certificate(requiring, ca):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(requiring, client_context(ca))
    assert "Traceback" not in requiring.log


def test_require_refuses_a_certificate_from_another_ca(requiring, ca, tmp_path):
    other_key, other = make_ca("Some other CA")
    cert, key = client_cert_files(tmp_path, other_key, other, "stranger")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(requiring, client_context(ca, cert, key))


def test_require_admits_a_certificate_from_the_ca_and_its_subject_reaches_the_gateway(requiring, ca, tmp_path):
    cert, key = client_cert_files(tmp_path, ca[0], ca[1], "orders-service")
    status, body, _ = https_get(requiring, client_context(ca, cert, key))
    assert status == 200, body
    until(lambda: "client certificate CN=orders-service" in requiring.log, timeout=5)


def test_request_admits_a_client_without_a_certificate_and_names_one_with(tmp_path, ca):
    cert, key = server_cert_files(tmp_path, ca[0], ca[1])
    server = launch(
        tmp_path,
        GATEHOUSE_GATEWAY_TLS_CERT=str(cert),
        GATEHOUSE_GATEWAY_TLS_KEY=str(key),
        GATEHOUSE_GATEWAY_TLS_CLIENT_AUTH="request",
        GATEHOUSE_GATEWAY_TLS_CLIENT_CA=str(ca[2] / "ca.pem"),
        GATEHOUSE_LOG_LEVEL="DEBUG",
    )
    try:
        server.deploy_api(MOCK)
        assert https_get(server, client_context(ca))[0] == 200
        client, client_key = client_cert_files(tmp_path, ca[0], ca[1], "billing")
        assert https_get(server, client_context(ca, client, client_key))[0] == 200
        until(lambda: "client certificate CN=billing" in server.log, timeout=5)
    finally:
        server.stop()


def serial_served(server, ca):
    """The serial number of the certificate a new connection gets."""
    with socket.create_connection(("127.0.0.1", server.gateway_port), timeout=5) as raw:
        with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509_serial(tls.getpeercert(binary_form=True))


def x509_serial(der):
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def replace(path, data):
    """As a renewal tool writes a file: a new file renamed over the old one."""
    new = path.with_suffix(".new")
    new.write_bytes(data)
    os.replace(new, path)


def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not(tmp_path, ca):
    live, renewal = tmp_path / "live", tmp_path / "renewal"
    live.mkdir()
    renewal.mkdir()
    cert, key = server_cert_files(live, ca[0], ca[1])
    server = launch(tmp_path, GATEHOUSE_GATEWAY_TLS_CERT=str(cert), GATEHOUSE_GATEWAY_TLS_KEY=str(key))
    try:
        pid, first = server.proc.pid, serial_served(server, ca)
        replace(key, b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        until(lambda: "the changed TLS files were not taken" in server.log, timeout=5)
        assert serial_served(server, ca) == first  # the previous pair serves on
        new_cert, new_key = server_cert_files(renewal, ca[0], ca[1])
        replace(cert, new_cert.read_bytes())
        replace(key, new_key.read_bytes())
        until(lambda: serial_served(server, ca) != first, timeout=5)
        assert server.proc.poll() is None and server.proc.pid == pid
        assert server.log.count("the changed TLS files were not taken") == 1
    finally:
        server.stop()


def rewrite_unseen(path, data):
    """New contents in the same file with the same size and modification time: a change the
    files' watcher cannot see (it compares inode, size and mtime), so only SIGHUP can take it."""
    before = path.stat()
    assert len(data) <= before.st_size
    with open(path, "r+b") as file:  # the same inode
        file.write(data + b"\n" * (before.st_size - len(data)))  # PEM readers skip trailing lines
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def test_sighup_makes_every_worker_serve_a_certificate_its_watcher_did_not_see(tmp_path, ca):
    live = tmp_path / "live"
    live.mkdir()
    cert, key = server_cert_files(live, ca[0], ca[1])
    server = launch(
        tmp_path, GATEHOUSE_GATEWAY_TLS_CERT=str(cert), GATEHOUSE_GATEWAY_TLS_KEY=str(key), GATEHOUSE_WORKERS="2"
    )
    try:
        serving_pids(server)  # both workers up, each with the files as they were
        first = serial_served(server, ca)
        for attempt in range(50):  # a pair no longer than the one in place (sizes vary by a few bytes)
            renewal = tmp_path / f"renewal-{attempt}"
            renewal.mkdir()
            new_cert, new_key = server_cert_files(renewal, ca[0], ca[1])
            if new_cert.stat().st_size <= cert.stat().st_size and new_key.stat().st_size <= key.stat().st_size:
                break
        rewrite_unseen(cert, new_cert.read_bytes())
        rewrite_unseen(key, new_key.read_bytes())
        time.sleep(3)  # three of the watcher's checks: it takes a change after two
        assert {serial_served(server, ca) for _ in range(20)} == {first}, "not seen without SIGHUP"
        os.kill(server.proc.pid, signal.SIGHUP)  # the supervisor, which passes it to each worker
        renewed = x509_serial(ssl.PEM_cert_to_DER_cert(new_cert.read_text()))
        until(lambda: {serial_served(server, ca) for _ in range(20)} == {renewed}, timeout=5)
        assert server.proc.poll() is None
    finally:
        server.stop()


@pytest.mark.parametrize(
    "settings, wanted",
    [
        ({"GATEHOUSE_GATEWAY_TLS_CERT": "{cert}"}, "GATEHOUSE_GATEWAY_TLS_KEY must be set too"),
        (
            {"GATEHOUSE_GATEWAY_TLS_CERT": "{folder}/missing.pem", "GATEHOUSE_GATEWAY_TLS_KEY": "{key}"},
            "GATEHOUSE_GATEWAY_TLS_CERT: {folder}/missing.pem cannot be read",
        ),
        (
            {"GATEHOUSE_GATEWAY_TLS_CERT": "{cert}", "GATEHOUSE_GATEWAY_TLS_KEY": "{cert}"},
            "GATEHOUSE_GATEWAY_TLS_KEY: {cert} holds no PEM private key",
        ),
        (
            {
                "GATEHOUSE_GATEWAY_TLS_CERT": "{cert}",
                "GATEHOUSE_GATEWAY_TLS_KEY": "{key}",
                "GATEHOUSE_GATEWAY_TLS_CLIENT_AUTH": "require",
            },
            "GATEHOUSE_GATEWAY_TLS_CLIENT_CA must name a PEM file",
        ),
    ],
)
def test_a_wrong_tls_setting_stops_the_start_naming_it(tmp_path, ca, settings, wanted):
    cert, key = server_cert_files(tmp_path, ca[0], ca[1])
    names = {"cert": cert, "key": key, "folder": tmp_path}
    env = environment(tmp_path, **{name: value.format(**names) for name, value in settings.items()})
    done = refused_start(tmp_path, env, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert wanted.format(**names) in done.stderr
    assert "Traceback" not in done.stderr
    assert "Gatehouse portal:" not in done.stdout
