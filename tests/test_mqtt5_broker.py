"""MQTT 5 against a Mosquitto the tests start: user name and password, TLS with a CA made here
(PEM content, JKS by path), wrong password and wrong CA told to the client; the broker stopped and
restarted mid-stream (the gateway reconnects), and stopped for good (the endpoint shows down)."""

import base64
import re
import threading
import time

import pytest
import requests

from support.apis import mqtt_api
from support.gatehouse import launch
from support.message_clients import clients_for
from support.mosquitto import PASSWORD, USER, Mosquitto, auth, publish, unique_topic
from support.pki import jks_trust_store
from support.portal import portal_login
from support.streams import next_message, read_sse

JSON = {"Accept": "application/json"}
STORE_PASSWORD = "changeit-mqtt"

poll, post = clients_for("/mqtt")[:2]


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory):
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), tmp_path_factory.mktemp("certs")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def server(private_broker, tmp_path_factory):
    """A server whose GATEHOUSE_CERTS_DIR holds the broker's CA files."""
    (private_broker.certs / "mqtt-ca.jks").write_bytes(jks_trust_store(private_broker.ca, STORE_PASSWORD))
    server = launch(tmp_path_factory.mktemp("gw"), GATEHOUSE_CERTS_DIR=str(private_broker.certs))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(server):
    yield
    server.delete_all_apis()


def tls(trust_store, hostname_verifier=True):
    return {
        "security": {
            "auth": {"username": USER, "password": PASSWORD},
            "ssl": {"hostnameVerifier": hostname_verifier, "trustStore": trust_store},
        }
    }


def test_user_and_password_publish_and_consume(server, private_broker):
    topic = unique_topic("auth")
    address = ("127.0.0.1", private_broker.port)
    server.deploy_api(mqtt_api(address, topic, shared=auth(), get_count=1))
    poll(server, client="auth")
    post(server, b"authenticated")
    assert [i["content"] for i in poll(server, client="auth")["items"]] == ["authenticated"]


def test_wrong_password_is_a_clear_error_and_never_echoed(server, private_broker):
    address = ("127.0.0.1", private_broker.port)
    server.deploy_api(mqtt_api(address, unique_topic("bad-auth"), shared=auth("not-the-password")))
    expected = (
        f"The endpoint failed: the MQTT broker at 127.0.0.1:{private_broker.port} refused the connection: "
        "not authorized (check the user name and password)"
    )
    posted = requests.post(server.gateway + "/mqtt", data=b"x", timeout=15)
    assert posted.status_code == 502 and posted.json() == {"message": expected}
    got = requests.get(server.gateway + "/mqtt", headers=JSON, timeout=15)
    assert got.status_code == 502 and got.json() == {"message": expected}
    assert "not-the-password" not in server.log


@pytest.mark.parametrize("store", ["pem-content", "jks-path"])
def test_tls_with_the_ca_as_trust_store(server, private_broker, store):
    trust = (
        {"type": "PEM", "content": private_broker.ca_pem}
        if store == "pem-content"
        else {"type": "JKS", "path": "mqtt-ca.jks", "password": STORE_PASSWORD}
    )
    topic = unique_topic("tls")
    server.deploy_api(mqtt_api(("127.0.0.1", private_broker.tls_port), topic, shared=tls(trust), get_count=1))
    poll(server, client="tls")
    post(server, b"over TLS")
    assert [i["content"] for i in poll(server, client="tls")["items"]] == ["over TLS"]


def test_wrong_ca_and_wrong_host_name_are_clear_errors(server, private_broker):
    where = f"127.0.0.1:{private_broker.tls_port}"
    server.deploy_api(
        mqtt_api(
            ("127.0.0.1", private_broker.tls_port),
            unique_topic("wrong-ca"),
            shared=tls({"type": "PEM", "path": "mqtt-wrong-ca.pem"}),
        )
    )
    response = requests.post(server.gateway + "/mqtt", data=b"x", timeout=15)
    assert response.status_code == 502
    message = response.json()["message"]
    assert message.startswith(
        f"The endpoint failed: TLS verification of the MQTT broker at {where} failed: "
        "self-signed certificate in certificate chain"
    )
    assert "(issued by CN=Gatehouse MQTT test CA)" in message and "add the CA certificate" in message
    server.delete_all_apis()

    # The certificate names 127.0.0.1 and localhost, not 127.0.0.2 (which reaches the same listener).
    other = ("127.0.0.2", private_broker.tls_port)
    server.deploy_api(mqtt_api(other, unique_topic("wrong-name"), shared=tls({"type": "PEM", "path": "mqtt-ca.pem"})))
    response = requests.post(server.gateway + "/mqtt", data=b"x", timeout=15)
    assert response.status_code == 502
    assert "Give its address as a name (or IP address) that its certificate holds" in response.json()["message"]
    server.delete_all_apis()
    # Without host name verification the same address is accepted (the CA is still checked).
    server.deploy_api(
        mqtt_api(
            other,
            unique_topic("no-verify"),
            shared=tls({"type": "PEM", "path": "mqtt-ca.pem"}, hostname_verifier=False),
        )
    )
    post(server, b"accepted")


def endpoint_status(server, api_id):
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    endpoint_id = re.search(r"/endpoints/(\d+)/edit", page.text).group(1)
    return browser.get(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/_status").text


@pytest.mark.slow  # restarts the broker
def test_broker_restarted_mid_stream_then_stopped_for_good(server, private_broker):
    """Reconnect attempts 3 (0.5 + 1 + 2 s of backoff): a restart within them goes unnoticed by
    the client; once they are exhausted the stream ends with an error and the portal shows down."""
    address = ("127.0.0.1", private_broker.port)
    topic = unique_topic("restart")
    api_id = server.deploy_api(mqtt_api(address, topic, shared={**auth(), "reconnectAttempt": 3}))
    assert "reachable" in endpoint_status(server, api_id)
    options = {"username": USER, "password": PASSWORD}
    with requests.get(
        server.gateway + "/mqtt",
        stream=True,
        timeout=30,
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "restart"},
    ) as stream:
        assert read_sse(stream, 1) == [{"retry": "5000"}]
        publish(address, topic, b"before", **options)
        assert next_message(stream)["data"] == "before"

        private_broker.stop()
        restarted = time.monotonic()
        private_broker.start()
        # Delivery resumes without a redeploy: published until the gateway's subscriber is back.
        resumed = publish_until(address, topic, b"after", stream, options)
        assert resumed == {"event": "message", "data": "after"}
        assert time.monotonic() - restarted < 3.5 + 2  # within the attempts' backoff

        private_broker.stop()  # for good: 3 attempts fail, then the client is told
        started = time.monotonic()
        failed = next_message(stream, timeout=15)
        assert failed["event"] == "error"
        assert failed["data"] == (
            f"the MQTT broker at 127.0.0.1:{private_broker.port} cannot be reached: "
            "connection refused; gave up after 3 reconnect attempts"
        )
        assert time.monotonic() - started < 10
    private_broker.start()
    # The broker is back, but the gateway gave up: the portal says so until a client connects again.
    assert "down: the MQTT broker at" in endpoint_status(server, api_id)
    poll(server, client="restart-later")
    post(server, b"new connection")
    assert "reachable" in endpoint_status(server, api_id)


def publish_until(address, topic, payload, stream, options):
    """Publish `payload` every 0.2 s (in a thread) until the stream's next event arrives."""
    done = threading.Event()

    def keep_publishing():
        while not done.is_set():
            publish(address, topic, payload, **options)
            done.wait(0.2)

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    try:
        return next_message(stream)
    finally:
        done.set()
        publisher.join()


def test_attempts_zero_gives_up_at_once_and_a_publisher_is_told(server, private_broker):
    address = ("127.0.0.1", private_broker.port)
    server.deploy_api(mqtt_api(address, unique_topic("zero"), shared={**auth(), "reconnectAttempt": 0}))
    post(server, b"connects")
    private_broker.stop()
    try:
        response = requests.post(server.gateway + "/mqtt", data=b"lost", timeout=15)
        assert response.status_code == 502
        message = response.json()["message"]
        # Lost while waiting for its PUBACK, or found lost already: either way no retry is made.
        assert message.endswith(("; gave up after 0 reconnect attempts", "cannot be reached: connection refused")), (
            message
        )
    finally:
        private_broker.start()
    post(server, b"a new connection once the broker is back")


def test_shared_server_log_has_no_secret(server):
    assert PASSWORD not in server.log and base64.b64encode(PASSWORD.encode()).decode() not in server.log
